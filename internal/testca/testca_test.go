package testca_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"

	"github.com/claudemesh/claudemesh/internal/testca"
)

func TestIssue(t *testing.T) {
	ca := testca.New(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1", "::1", "localhost")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host}); err != nil {
			t.Errorf("certificate for %s does not verify: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "broker.example.invalid"}); err == nil {
		t.Error("certificate verifies for a host it does not name")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: testca.New(t).Pool(), DNSName: "localhost"}); err == nil {
		t.Error("certificate verifies against another CA")
	}
}

func TestFile(t *testing.T) {
	ca := testca.New(t)
	data, err := os.ReadFile(ca.File(t))
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("CA file %q, want one PEM certificate", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(ca.Cert) || !cert.IsCA {
		t.Errorf("CA file holds %v, want the CA certificate", cert.Subject)
	}
}
