// Build and run: cc gen.c -lsodium -o gen && ./gen > vectors.json
//
// Writes reference values from libsodium for the identity package tests:
// ed25519 keypairs with their X25519 conversions, boxes made with
// crypto_box_easy, and candidate public keys with the result of
// crypto_sign_ed25519_pk_to_curve25519 for each. Every input is derived from
// fixed labels with crypto_generichash, so the output is reproducible.

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 40
#define NBOXES 10

static void derive(unsigned char *out, size_t outlen, const char *label, unsigned int n) {
    unsigned char in[64];
    size_t len = strlen(label);
    memcpy(in, label, len);
    in[len] = (unsigned char)(n & 0xff);
    in[len + 1] = (unsigned char)((n >> 8) & 0xff);
    crypto_generichash(out, outlen, in, len + 2, NULL, 0);
}

static void hex(const unsigned char *b, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        printf("%02x", b[i]);
    }
    putchar('"');
}

static unsigned char seeds[NKEYS][crypto_sign_SEEDBYTES];
static unsigned char edpk[NKEYS][crypto_sign_PUBLICKEYBYTES];
static unsigned char edsk[NKEYS][crypto_sign_SECRETKEYBYTES];
static unsigned char xpk[NKEYS][crypto_box_PUBLICKEYBYTES];
static unsigned char xsk[NKEYS][crypto_box_SECRETKEYBYTES];

static int ncand;

// candidate prints one public key candidate and libsodium's verdict on it.
static void candidate(const char *name, const unsigned char pk[32]) {
    unsigned char out[32];
    int rc = crypto_sign_ed25519_pk_to_curve25519(out, pk);
    printf("%s\n    {\"name\": \"%s\", \"ed25519_pk\": ", ncand++ ? "," : "", name);
    hex(pk, 32);
    printf(", \"rc\": %d, \"accepted\": %s", rc, rc == 0 ? "true" : "false");
    if (rc == 0) {
        printf(", \"x25519_pk\": ");
        hex(out, 32);
    }
    putchar('}');
}

// Encoding of a field element y (given as y mod 2^255 in little-endian)
// with the x sign bit set as requested.
static void encode(unsigned char out[32], const unsigned char y[32], int sign) {
    memcpy(out, y, 32);
    out[31] = (unsigned char)((out[31] & 0x7f) | (sign ? 0x80 : 0));
}

// small sets y to the integer v (v < 256).
static void small(unsigned char y[32], unsigned int v) {
    memset(y, 0, 32);
    y[0] = (unsigned char)v;
}

// pplus sets y to p + k, p = 2^255 - 19, for k <= 18 (a non-canonical encoding of k).
static void pplus(unsigned char y[32], unsigned int k) {
    memset(y, 0xff, 32);
    y[0] = (unsigned char)(0xed + k);
    y[31] = 0x7f;
}

int main(void) {
    if (sodium_init() < 0) {
        return 1;
    }

    printf("{\n  \"libsodium_version\": \"%s\",\n  \"keypairs\": [", sodium_version_string());
    for (int i = 0; i < NKEYS; i++) {
        derive(seeds[i], sizeof seeds[i], "claudemesh identity seed", (unsigned int)i);
        if (crypto_sign_seed_keypair(edpk[i], edsk[i], seeds[i]) != 0 ||
            crypto_sign_ed25519_pk_to_curve25519(xpk[i], edpk[i]) != 0 ||
            crypto_sign_ed25519_sk_to_curve25519(xsk[i], edsk[i]) != 0) {
            fprintf(stderr, "keypair %d failed\n", i);
            return 1;
        }
        printf("%s\n    {\"seed\": ", i ? "," : "");
        hex(seeds[i], 32);
        printf(", \"ed25519_pk\": ");
        hex(edpk[i], 32);
        printf(", \"ed25519_sk\": ");
        hex(edsk[i], 64);
        printf(", \"x25519_pk\": ");
        hex(xpk[i], 32);
        printf(", \"x25519_sk\": ");
        hex(xsk[i], 32);
        putchar('}');
    }
    printf("\n  ],\n  \"boxes\": [");

    static const size_t lens[NBOXES] = {0, 1, 15, 16, 17, 31, 32, 33, 100, 1000};
    for (int i = 0; i < NBOXES; i++) {
        int from = (3 * i) % NKEYS, to = (7 * i + 1) % NKEYS;
        unsigned char nonce[crypto_box_NONCEBYTES];
        unsigned char *m = malloc(lens[i] + 1), *c = malloc(lens[i] + crypto_box_MACBYTES);
        derive(nonce, sizeof nonce, "claudemesh identity nonce", (unsigned int)i);
        for (size_t j = 0; j < lens[i]; j += 32) {
            unsigned char block[32];
            derive(block, sizeof block, "claudemesh identity text", (unsigned int)(i * 64 + j / 32));
            memcpy(m + j, block, lens[i] - j < 32 ? lens[i] - j : 32);
        }
        if (crypto_box_easy(c, m, lens[i], nonce, xpk[to], xsk[from]) != 0) {
            fprintf(stderr, "box %d failed\n", i);
            return 1;
        }
        printf("%s\n    {\"sender\": %d, \"recipient\": %d, \"nonce\": ", i ? "," : "", from, to);
        hex(nonce, sizeof nonce);
        printf(", \"plaintext\": ");
        hex(m, lens[i]);
        printf(", \"box\": ");
        hex(c, lens[i] + crypto_box_MACBYTES);
        putchar('}');
        free(m);
        free(c);
    }
    printf("\n  ],\n  \"public_keys\": [");

    // The eight small-order points: y = 1 (identity), y = -1 (order 2),
    // y = 0 (order 4, both signs of x), and the two y values of order 8
    // (both signs of x each).
    static const unsigned char order8a[32] = {
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
        0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05};
    static const unsigned char order8b[32] = {
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
        0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a};
    unsigned char y[32], pk[32], torsion[7][32];
    int nt = 0;
    char name[128];

    small(y, 1);
    encode(pk, y, 0);
    candidate("small order: identity (y=1)", pk);
    encode(pk, y, 1);
    candidate("small order: identity, x=0 with sign bit set (non-canonical)", pk);
    pplus(y, 1);
    encode(pk, y, 0);
    candidate("small order: identity as y=p+1 (non-canonical)", pk);
    encode(pk, y, 1);
    candidate("small order: identity as y=p+1, sign bit set (non-canonical)", pk);

    memset(y, 0xff, 32);
    y[0] = 0xec;
    y[31] = 0x7f;
    encode(pk, y, 0);
    candidate("small order 2: y=p-1", pk);
    memcpy(torsion[nt++], pk, 32);
    encode(pk, y, 1);
    candidate("small order 2: y=p-1, x=0 with sign bit set (non-canonical)", pk);

    small(y, 0);
    encode(pk, y, 0);
    candidate("small order 4: y=0, x positive", pk);
    memcpy(torsion[nt++], pk, 32);
    encode(pk, y, 1);
    candidate("small order 4: y=0, x negative", pk);
    memcpy(torsion[nt++], pk, 32);
    pplus(y, 0);
    encode(pk, y, 0);
    candidate("small order 4: y=p (non-canonical 0)", pk);
    encode(pk, y, 1);
    candidate("small order 4: y=p (non-canonical 0), sign bit set", pk);

    for (int s = 0; s < 2; s++) {
        encode(pk, order8a, s);
        snprintf(name, sizeof name, "small order 8: first y, sign %d", s);
        candidate(name, pk);
        memcpy(torsion[nt++], pk, 32);
        encode(pk, order8b, s);
        snprintf(name, sizeof name, "small order 8: second y, sign %d", s);
        candidate(name, pk);
        memcpy(torsion[nt++], pk, 32);
    }

    // Small y values, canonical and as y+p (non-canonical): each is either not
    // on the curve or a point of some order, decided by libsodium.
    for (unsigned int k = 2; k <= 18; k++) {
        for (int s = 0; s < 2; s++) {
            small(y, k);
            encode(pk, y, s);
            snprintf(name, sizeof name, "y=%u, sign %d", k, s);
            candidate(name, pk);
            pplus(y, k);
            encode(pk, y, s);
            snprintf(name, sizeof name, "y=p+%u (non-canonical %u), sign %d", k, k, s);
            candidate(name, pk);
        }
    }

    // Valid public keys and their negations: in the prime-order subgroup.
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "keypair %d public key", i);
        candidate(name, edpk[i]);
        memcpy(pk, edpk[i], 32);
        pk[31] ^= 0x80;
        snprintf(name, sizeof name, "keypair %d public key negated", i);
        candidate(name, pk);
    }

    // A valid public key plus each small-order point except the identity:
    // on the curve, not of small order, outside the prime-order subgroup.
    for (int i = 0; i < 3; i++) {
        for (int t = 0; t < nt; t++) {
            if (crypto_core_ed25519_add(pk, edpk[i], torsion[t]) != 0) {
                fprintf(stderr, "add %d %d failed\n", i, t);
                return 1;
            }
            snprintf(name, sizeof name, "keypair %d public key plus small-order point %d", i, t);
            candidate(name, pk);
        }
    }

    // Arbitrary 32-byte strings.
    for (unsigned int i = 0; i < 24; i++) {
        derive(pk, 32, "claudemesh identity candidate", i);
        snprintf(name, sizeof name, "arbitrary bytes %u", i);
        candidate(name, pk);
    }
    // Points of prime order from crypto_core_ed25519_from_uniform.
    for (unsigned int i = 0; i < 8; i++) {
        unsigned char r[32];
        derive(r, 32, "claudemesh identity uniform", i);
        crypto_core_ed25519_from_uniform(pk, r);
        snprintf(name, sizeof name, "prime-order point %u", i);
        candidate(name, pk);
    }
    printf("\n  ]\n}\n");
    return 0;
}
