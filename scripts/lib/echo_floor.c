// The transport floor for scripts/bench-tracking: the fastest one-at-a-time round trips two
// processes can make over a Unix socket on this machine, with no work at all (epoll, read, write
// of 40 bytes; the shape of a Shoal call minus everything Shoal does).
//   echo_floor serve SOCKET          answers every read with the same bytes until the peer hangs up
//   echo_floor call SOCKET SECONDS   prints `calls=N calls_per_s=X`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int wait_readable(int fd) {
  int poller = epoll_create1(0);
  struct epoll_event event = {.events = EPOLLIN};
  epoll_ctl(poller, EPOLL_CTL_ADD, fd, &event);
  return poller;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  strncpy(address.sun_path, argv[2], sizeof address.sun_path - 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  char bytes[64] = {0};
  struct epoll_event ready;
  if (strcmp(argv[1], "serve") == 0) {
    unlink(address.sun_path);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) || listen(fd, 1)) return perror("bind"), 1;
    int peer = accept(fd, 0, 0);
    int poller = wait_readable(peer);
    for (;;) {
      epoll_wait(poller, &ready, 1, -1);
      ssize_t count = read(peer, bytes, sizeof bytes);
      if (count <= 0) return 0;
      if (write(peer, bytes, count) != count) return 1;
    }
  }
  if (argc < 4 || connect(fd, (struct sockaddr *)&address, sizeof address)) return perror("connect"), 1;
  int poller = wait_readable(fd);
  double seconds = atof(argv[3]), start = now(), end = start + seconds;
  long calls = 0;
  while (now() < end) {
    if (write(fd, bytes, 40) != 40) return 1;
    epoll_wait(poller, &ready, 1, -1);
    if (read(fd, bytes, sizeof bytes) <= 0) return 1;
    calls++;
  }
  printf("calls=%ld calls_per_s=%.1f\n", calls, calls / (now() - start));
  return 0;
}
