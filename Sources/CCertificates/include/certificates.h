// Certificates for a mesh's TLS: a new P-256 key and an X.509 v3 certificate, self-signed (a CA)
// or signed by a CA, written as PEM. OpenSSL's libcrypto.
#ifndef SHOAL_CERTIFICATES_H
#define SHOAL_CERTIFICATES_H

#include <stddef.h>

/// Makes a key pair and a certificate for `common_name`, valid from 5 minutes ago for `days`.
/// `subject_alt_names` is OpenSSL's list ("DNS:a.example,IP:10.0.0.1") or NULL. A CA certificate
/// (`is_ca`) may sign others; any other is for TLS servers and clients both. With
/// `issuer_certificate_pem` and `issuer_key_pem` NULL the certificate signs itself.
/// On success returns 0 and sets `*certificate_pem` and `*key_pem` to strings the caller frees
/// with `free`; on failure returns -1 with the reason in `error`.
int shoal_make_certificate(
    const char *common_name, const char *subject_alt_names, int is_ca, int days,
    const char *issuer_certificate_pem, const char *issuer_key_pem,
    char **certificate_pem, char **key_pem, char *error, size_t error_size);

#endif
