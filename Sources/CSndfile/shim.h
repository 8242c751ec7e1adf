#include <sndfile.h>
// glibc's mallopt, for AudioMemory (the Glibc module leaves malloc.h out).
#include <malloc.h>
