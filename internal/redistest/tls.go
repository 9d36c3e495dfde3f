package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TLSServer is a Redis node that speaks only TLS, with a certificate from a
// CA the test made.
type TLSServer struct {
	Addr   string
	CAFile string // PEM certificate of the CA that signed the server's
	URL    string // rediss://127.0.0.1:port?tls_ca=<CAFile, URL-escaped>
	roots  *x509.CertPool
}

// ClientConfig returns a client TLS config that trusts the test CA.
func (s *TLSServer) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: s.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

var tlsServer once[*TLSServer]

// TLSServers returns the binary's TLS server, starting it on first use. Its
// certificate is valid for 127.0.0.1 and localhost, and it asks clients for
// none.
func TLSServers(t testing.TB) *TLSServer {
	t.Helper()
	return tlsServer.get(t, "redis-server with TLS", startTLS)
}

func startTLS() (*TLSServer, error) {
	caPEM, certPEM, keyPEM, err := makeCerts()
	if err != nil {
		return nil, err
	}
	s := &TLSServer{roots: x509.NewCertPool()}
	if !s.roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("test CA certificate does not parse")
	}
	p, err := startServer(spec{tls: s.ClientConfig(), args: func(dir string, port int) ([]string, error) {
		s.CAFile = filepath.Join(dir, "ca.crt")
		cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
		for name, b := range map[string][]byte{s.CAFile: caPEM, cert: certPEM, key: keyPEM} {
			if err := os.WriteFile(name, b, 0o600); err != nil {
				return nil, err
			}
		}
		return []string{"--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", s.CAFile,
			"--tls-auth-clients", "no"}, nil
	}})
	if err != nil {
		return nil, err
	}
	s.Addr = p.addr
	s.URL = "rediss://" + p.addr + "?tls_ca=" + url.QueryEscape(s.CAFile)
	return s, nil
}

// makeCerts makes a CA and a server certificate it signs for 127.0.0.1 and
// localhost, and returns them and the server's key, PEM-encoded.
func makeCerts() (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	// Backdated an hour so a clock a little off still accepts them.
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "karat redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    ca.NotBefore,
		NotAfter:     ca.NotAfter,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}
