#include "certificates.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *error, size_t size, const char *what) {
    unsigned long code = ERR_get_error();
    char reason[256] = "";
    if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
    snprintf(error, size, "%s%s%s", what, code != 0 ? ": " : "", reason);
    ERR_clear_error();
    return -1;
}

static EVP_PKEY *new_key(void) {
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    if (context == NULL) return NULL;
    if (EVP_PKEY_keygen_init(context) <= 0 ||
        EVP_PKEY_CTX_set_ec_paramgen_curve_nid(context, NID_X9_62_prime256v1) <= 0 ||
        EVP_PKEY_keygen(context, &key) <= 0) {
        key = NULL;
    }
    EVP_PKEY_CTX_free(context);
    return key;
}

static int add_extension(X509 *certificate, X509V3_CTX *context, int nid, const char *value) {
    X509_EXTENSION *extension = X509V3_EXT_conf_nid(NULL, context, nid, value);
    if (extension == NULL) return 0;
    int added = X509_add_ext(certificate, extension, -1);
    X509_EXTENSION_free(extension);
    return added;
}

/// The PEM text a writer puts into a memory BIO, as a string to free.
static char *bio_string(BIO *bio) {
    char *data = NULL;
    long length = BIO_get_mem_data(bio, &data);
    if (length < 0) return NULL;
    char *copy = malloc((size_t)length + 1);
    if (copy == NULL) return NULL;
    memcpy(copy, data, (size_t)length);
    copy[length] = 0;
    return copy;
}

int shoal_make_certificate(
    const char *common_name, const char *subject_alt_names, int is_ca, int days,
    const char *issuer_certificate_pem, const char *issuer_key_pem,
    char **certificate_pem, char **key_pem, char *error, size_t error_size) {
    int result = -1;
    EVP_PKEY *key = NULL, *issuer_key = NULL;
    X509 *certificate = NULL, *issuer = NULL;
    BIGNUM *serial = NULL;
    BIO *out = NULL;
    *certificate_pem = NULL;
    *key_pem = NULL;

    if (issuer_certificate_pem != NULL) {
        BIO *in = BIO_new_mem_buf(issuer_certificate_pem, -1);
        issuer = in ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
        BIO_free(in);
        if (issuer == NULL) { fail(error, error_size, "the CA certificate is not PEM"); goto done; }
        in = BIO_new_mem_buf(issuer_key_pem, -1);
        issuer_key = in ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
        BIO_free(in);
        if (issuer_key == NULL) { fail(error, error_size, "the CA key is not a PEM private key"); goto done; }
        if (X509_check_private_key(issuer, issuer_key) != 1) {
            fail(error, error_size, "the CA key does not belong to the CA certificate");
            goto done;
        }
    }
    key = new_key();
    if (key == NULL) { fail(error, error_size, "cannot make a P-256 key"); goto done; }
    certificate = X509_new();
    if (certificate == NULL || X509_set_version(certificate, 2) != 1) {
        fail(error, error_size, "cannot make a certificate");
        goto done;
    }
    // A random 127-bit serial number, as RFC 5280 allows up to 20 bytes and wants them unique.
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) { fail(error, error_size, "no random bytes"); goto done; }
    bytes[0] &= 0x7f;
    serial = BN_bin2bn(bytes, sizeof bytes, NULL);
    if (serial == NULL || BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(certificate)) == NULL) {
        fail(error, error_size, "cannot set the serial number");
        goto done;
    }
    X509_gmtime_adj(X509_getm_notBefore(certificate), -300);
    X509_time_adj_ex(X509_getm_notAfter(certificate), days, 0, NULL);
    X509_NAME *name = X509_get_subject_name(certificate);
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"Shoal mesh", -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0) != 1) {
        fail(error, error_size, "the name cannot be used");
        goto done;
    }
    X509_set_issuer_name(certificate, issuer ? X509_get_subject_name(issuer) : name);
    if (X509_set_pubkey(certificate, key) != 1) { fail(error, error_size, "cannot set the key"); goto done; }

    X509V3_CTX context;
    X509V3_set_ctx(&context, issuer ? issuer : certificate, certificate, NULL, NULL, 0);
    int ok = is_ca ? add_extension(certificate, &context, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
                         add_extension(certificate, &context, NID_key_usage, "critical,keyCertSign,cRLSign")
                   : add_extension(certificate, &context, NID_basic_constraints, "critical,CA:FALSE") &&
                         add_extension(certificate, &context, NID_key_usage, "critical,digitalSignature") &&
                         add_extension(certificate, &context, NID_ext_key_usage, "serverAuth,clientAuth");
    ok = ok && add_extension(certificate, &context, NID_subject_key_identifier, "hash");
    if (ok && issuer) ok = add_extension(certificate, &context, NID_authority_key_identifier, "keyid:always");
    if (!ok) { fail(error, error_size, "cannot add the extensions"); goto done; }
    if (subject_alt_names != NULL && subject_alt_names[0] != 0 &&
        !add_extension(certificate, &context, NID_subject_alt_name, subject_alt_names)) {
        fail(error, error_size, "the host names and addresses cannot be used");
        goto done;
    }
    if (X509_sign(certificate, issuer_key ? issuer_key : key, EVP_sha256()) <= 0) {
        fail(error, error_size, "cannot sign the certificate");
        goto done;
    }

    out = BIO_new(BIO_s_mem());
    if (out == NULL || PEM_write_bio_X509(out, certificate) != 1 || (*certificate_pem = bio_string(out)) == NULL) {
        fail(error, error_size, "cannot write the certificate");
        goto done;
    }
    BIO_free(out);
    out = BIO_new(BIO_s_mem());
    if (out == NULL || PEM_write_bio_PrivateKey(out, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        (*key_pem = bio_string(out)) == NULL) {
        free(*certificate_pem);
        *certificate_pem = NULL;
        fail(error, error_size, "cannot write the key");
        goto done;
    }
    result = 0;
done:
    BIO_free(out);
    BN_free(serial);
    X509_free(certificate);
    X509_free(issuer);
    EVP_PKEY_free(key);
    EVP_PKEY_free(issuer_key);
    return result;
}
