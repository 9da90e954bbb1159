package main

import (
	"strings"
	"testing"
)

func TestHealthURL(t *testing.T) {
	tests := []struct {
		addr, want, wantErr string
	}{
		{"127.0.0.1:8888", "http://127.0.0.1:8888/health", ""},
		{":9000", "http://127.0.0.1:9000/health", ""},
		{"gw.example:80", "http://gw.example:80/health", ""},
		{"[::1]:8888", "http://[::1]:8888/health", ""},
		{"http://gw:8888", "http://gw:8888/health", ""},
		{"https://gw:8443/", "https://gw:8443/health", ""},
		{"http://gw:8888/ready", "http://gw:8888/ready", ""},
		{"8888", "", "not host:port"},
		{"gw:", "", "no port"},
		{"http:///health", "", "host"},
	}
	for _, tt := range tests {
		got, err := healthURL(tt.addr)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("healthURL(%q) = %q, %v; want an error with %q", tt.addr, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
}
