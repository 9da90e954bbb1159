package wire

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"
)

// APIKeyHeader is the header carrying the HTTP API key.
const APIKeyHeader = "X-API-Key"

// API is a client of the gateway's HTTP API.
type API struct {
	// BaseURL is scheme://host:port, e.g. http://127.0.0.1:8888.
	BaseURL string
	// Key is sent as X-API-Key when not empty.
	Key string
	// Client does the requests (a client with a 10 s timeout when nil).
	Client *http.Client
}

// NewAPI returns an API client for baseURL with key. tlsConfig is used for https URLs
// (nil: system roots).
func NewAPI(baseURL, key string, tlsConfig *tls.Config) *API {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConfig
	return &API{BaseURL: baseURL, Key: key, Client: &http.Client{Transport: tr, Timeout: DefaultTimeout}}
}

// APIResult is an HTTP answer: status and body.
type APIResult struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *APIResult) String() string { return fmt.Sprintf("HTTP %d %.500s", r.Status, r.Body) }

// Do sends a request. body is sent as JSON when not nil (marshaled unless it is []byte
// or string). Extra headers are given as name, value pairs.
func (a *API) Do(method, path string, body any, header ...string) (*APIResult, error) {
	var rd io.Reader
	if body != nil {
		b, err := marshalBody(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.BaseURL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Key != "" {
		req.Header.Set(APIKeyHeader, a.Key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	hc := a.Client
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxInbound))
	if err != nil {
		return nil, err
	}
	return &APIResult{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Get is Do with GET and no body.
func (a *API) Get(path string) (*APIResult, error) { return a.Do(http.MethodGet, path, nil) }

// Post is Do with POST.
func (a *API) Post(path string, body any) (*APIResult, error) {
	return a.Do(http.MethodPost, path, body)
}

// SendMessage posts a chat message to J-IM's /api/message/send.
func (a *API) SendMessage(chat any) (*APIResult, error) {
	return a.Post("/api/message/send", chat)
}

// CloseIdle closes idle keep-alive connections of the client.
func (a *API) CloseIdle() {
	if a.Client != nil {
		a.Client.CloseIdleConnections()
	}
}

// WaitHealthy polls GET /health until it answers 200 or timeout passes.
func (a *API) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		r, err := a.Get("/health")
		if err == nil && r.Status == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("GET /health: %w", err)
			}
			return fmt.Errorf("GET /health: %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
