package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TLSServer is a Redis node that speaks only TLS, with a certificate for
// 127.0.0.1 and localhost signed by a CA made for the test.
type TLSServer struct {
	Addr   string
	CAFile string // PEM of the test CA
	URL    string // rediss://127.0.0.1:port?tls_ca=CAFile
	pool   *x509.CertPool
}

// ClientConfig returns a TLS configuration that trusts the test CA.
func (s *TLSServer) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: s.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// TLSServers returns the binary's TLS server, starting it on first use.
func TLSServers(t testing.TB) *TLSServer {
	t.Helper()
	return tlsSrv.get(t, "TLS redis-server", startTLS)
}

var testCA *x509.CertPool // set by startTLS for dialTLS's readiness checks

func dialTLS(addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: time.Second}
	return tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: testCA, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
}

func startTLS() (*TLSServer, error) {
	dir, err := tempDir()
	if err != nil {
		return nil, err
	}
	caFile, certFile, keyFile, pool, err := makeCerts(dir)
	if err != nil {
		return nil, err
	}
	testCA = pool
	var addr string
	for range 5 {
		p, perr := freePort(false)
		if perr != nil {
			return nil, perr
		}
		addr, err = start([]string{"--port", "0", "--tls-port", strconv.Itoa(p), "--tls-cert-file", certFile,
			"--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no"},
			"127.0.0.1:"+strconv.Itoa(p), true)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return &TLSServer{Addr: addr, CAFile: caFile, pool: pool,
		URL: "rediss://" + addr + "?tls_ca=" + url.QueryEscape(caFile)}, nil
}

// makeCerts writes a CA and a server certificate (SANs 127.0.0.1, ::1 and
// localhost) signed by it.
func makeCerts(dir string) (caFile, certFile, keyFile string, pool *x509.CertPool, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "karat test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	for _, f := range []struct {
		path, kind string
		der        []byte
	}{{caFile, "CERTIFICATE", caDER}, {certFile, "CERTIFICATE", der}, {keyFile, "EC PRIVATE KEY", keyDER}} {
		if err = os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der}), 0o600); err != nil {
			return
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return
}
