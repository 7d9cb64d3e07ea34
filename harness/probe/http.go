package probe

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// HTTP checks that a user reaches an app: a GET with a Host header that must
// answer 200 and, when set, contain a marker in its body. It is the lan probe
// (through the ingress IP) and the internet probe (through the tunnel's public
// address, from the Internet vantage point).
type HTTP struct {
	name   string
	url    string
	host   string
	marker string
	client *http.Client
	forget func(ctx context.Context) error
}

// HTTPOption configures an HTTP probe.
type HTTPOption func(*HTTP)

// WithHost sets the Host header (the Ingress rule's host).
func WithHost(h string) HTTPOption { return func(p *HTTP) { p.host = h } }

// WithMarker requires the body to contain m, so that a default backend's 200 or
// another app's page does not count as the app answering.
func WithMarker(m string) HTTPOption { return func(p *HTTP) { p.marker = m } }

// WithDialer routes the probe's connections through dial: the Internet vantage
// point dials from its own network namespace, which has no route to the LAN.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) HTTPOption {
	return func(p *HTTP) { p.client.Transport.(*http.Transport).DialContext = dial }
}

// WithForget runs forget before each request: the LAN probe forgets its
// neighbour (ARP) entry for the ingress IP, so that each sample is a new
// laptop on the LAN, which must ask who holds the address. A client in
// constant use keeps its entry fresh from the answers and never asks: with
// MetalLB gone it keeps reaching the node that announced the IP, and would
// hide the loss that every other client sees.
func WithForget(forget func(ctx context.Context) error) HTTPOption {
	return func(p *HTTP) { p.forget = forget }
}

// NewHTTP returns the probe name for url.
func NewHTTP(name, url string, opts ...HTTPOption) *HTTP {
	tr := &http.Transport{
		// Every sample is a fresh connection: a kept-alive connection would hide
		// a path that broke after it was opened (an ARP entry, a dead tunnel).
		DisableKeepAlives: true,
		Proxy:             nil,
		DialContext:       (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}
	p := &HTTP{name: name, url: url, client: &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func (p *HTTP) Name() string { return p.name }

// Check implements Probe.
func (p *HTTP) Check(ctx context.Context) Result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return Result{Err: err}
	}
	if p.host != "" {
		req.Host = p.host
	}
	if p.forget != nil {
		if err := p.forget(ctx); err != nil {
			return Result{Took: time.Since(start), Err: fmt.Errorf("forget the neighbour entry before the request: %w", err)}
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return Result{Took: time.Since(start), Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	took := time.Since(start)
	if err != nil {
		return Result{Took: took, Err: fmt.Errorf("read body: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		return Result{Took: took, Err: fmt.Errorf("GET %s (Host %s): status %d", p.url, p.host, resp.StatusCode)}
	}
	if p.marker != "" && !strings.Contains(string(body), p.marker) {
		return Result{Took: took, Err: fmt.Errorf("GET %s (Host %s): 200 without the app's marker %q", p.url, p.host, p.marker)}
	}
	return Result{OK: true, Took: took, Detail: resp.Status}
}
