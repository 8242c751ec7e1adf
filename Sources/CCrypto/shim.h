// OpenSSL's libcrypto, for SHA-256 digests of blobs (hardware-accelerated where the CPU can).
#include <openssl/evp.h>
