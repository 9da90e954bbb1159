package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// defaultHealthAddr is the address `timgw health` checks without one.
const defaultHealthAddr = "127.0.0.1:8888"

// health runs `timgw health [-timeout 3s] [-insecure] [ADDR]`: GET /health of the
// gateway at ADDR (host:port, :port for this host, or an http:// or https:// URL). It
// returns the exit status: 0 when the gateway answers 200, 1 otherwise (draining,
// unreachable, timed out), 2 on a usage error. It is the container health check of the
// distroless image, which has no curl.
func health(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("timgw health", flag.ContinueOnError)
	fl.SetOutput(stderr)
	timeout := fl.Duration("timeout", 3*time.Second, "give up after this long")
	insecure := fl.Bool("insecure", false, "https: do not verify the certificate")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: timgw health [-timeout 3s] [-insecure] [ADDR]\n"+
			"  ADDR: host:port, :port or an http(s):// URL (default %s)\n", defaultHealthAddr)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 1 {
		fl.Usage()
		return 2
	}
	addr := defaultHealthAddr
	if fl.NArg() == 1 {
		addr = fl.Arg(0)
	}
	target, err := healthURL(addr)
	if err != nil {
		fmt.Fprintln(stderr, "timgw health:", err)
		return 2
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: *insecure}, //nolint:gosec // asked for with -insecure
	}}
	resp, err := client.Get(target)
	if err != nil {
		fmt.Fprintln(stderr, "timgw health: unhealthy:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	line := fmt.Sprintf("%s %s %s", target, resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "timgw health: unhealthy:", line)
		return 1
	}
	fmt.Fprintln(stdout, "healthy:", line)
	return 0
}

// healthURL turns the ADDR of `timgw health` into the URL of /health.
func healthURL(addr string) (string, error) {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("%q: not a URL with a host", addr)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/health"
		}
		return u.String(), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port, :port or a URL: %w", addr, err)
	}
	if port == "" {
		return "", fmt.Errorf("%q: no port", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/health", nil
}
