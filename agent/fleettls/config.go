package fleettls

import (
	"crypto/tls"
	"net/http"
)

// ServerTLS returns a server configuration that requires a client
// certificate carrying the fleet key, or nil when the fleet is open (serve
// plain HTTP). Each call returns a new Config the caller may modify.
func (f *Fleet) ServerTLS() *tls.Config {
	return f.serverTLS(tls.RequireAnyClientCert)
}

// ServerTLSOptionalClient is ServerTLS for a listener that also serves the
// local status API: a client may connect without a certificate (an operator
// running curl -k), but one that presents a certificate must present the
// fleet's. Guard every peer handler with PeerAuthenticated. Nil when open.
func (f *Fleet) ServerTLSOptionalClient() *tls.Config {
	// RequestClientCert, not VerifyClientCertIfGiven: the latter would also
	// verify the certificate against ClientCAs, which the fleet has no use
	// for; the pinned key check below is the one authority.
	return f.serverTLS(tls.RequestClientCert)
}

func (f *Fleet) serverTLS(auth tls.ClientAuthType) *tls.Config {
	if !f.Closed() {
		return nil
	}
	c := f.baseTLS()
	c.ClientAuth = auth
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 && auth == tls.RequestClientCert {
			return nil // no certificate: connected, but PeerAuthenticated is false
		}
		return f.checkPeer(cs.PeerCertificates)
	}
	return c
}

// ClientTLS returns a client configuration that presents the fleet
// certificate and accepts only a server holding the fleet key, or nil when
// the fleet is open. Hostnames and CAs are not checked (InsecureSkipVerify);
// the pinned key check replaces them. Each call returns a new Config.
func (f *Fleet) ClientTLS() *tls.Config {
	if !f.Closed() {
		return nil
	}
	c := f.baseTLS()
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		return f.checkPeer(cs.PeerCertificates)
	}
	return c
}

// baseTLS is what client and server share: TLS 1.3 only, the fleet
// certificate. The pin lives in VerifyConnection rather than
// VerifyPeerCertificate because crypto/tls calls it on every connection,
// resumed ones included.
func (f *Fleet) baseTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{f.cert},
	}
}

// Transport returns the peer HTTP transport: a clone of base speaking TLS
// with ClientTLS when the fleet is closed, base itself when open. A nil base
// stands for a clone of http.DefaultTransport. Callers build peer URLs with
// Scheme. Use it for peers only: the origin mirror's certificate is not the
// fleet's and would fail the pin.
func (f *Fleet) Transport(base *http.Transport) *http.Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	if !f.Closed() {
		return base
	}
	t := base.Clone()
	t.TLSClientConfig = f.ClientTLS()
	return t
}
