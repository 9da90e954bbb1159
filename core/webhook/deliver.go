package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/timgw/timgw/core/config"
)

// Header names of a delivery.
const (
	HeaderEvent          = "X-Timgw-Event"
	HeaderEventID        = "X-Timgw-Event-Id"
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderTimestamp      = "X-Timgw-Timestamp"
	HeaderSignature      = "X-Timgw-Signature"
)

// Sign returns the X-Timgw-Signature of body sent at timestamp (unix seconds):
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func Sign(secret string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(strconv.AppendInt(nil, timestamp, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is the signature of body sent at timestamp (what a
// receiver checks; it should also refuse timestamps far from its clock).
func Verify(secret string, timestamp int64, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(sig))
}

// backoff is the pause after the n-th failed attempt (n >= 1): min doubled n-1 times,
// capped at max, then a random point between half of it and all of it (jitter, so that
// events that failed together do not retry together). r is a number in [0, 1).
func backoff(n int, min, max time.Duration, r float64) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + time.Duration(r*float64(d/2))
}

// jitter is the random source of backoff.
func jitter() float64 { return rand.Float64() }

// post delivers one event body to ep: nil when the endpoint answered 2xx.
func post(ctx context.Context, client *http.Client, ep config.WebhookEndpoint, typ, id string, body []byte, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, ep.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "timgw-webhook")
	req.Header.Set(HeaderEvent, typ)
	req.Header.Set(HeaderEventID, id)
	req.Header.Set(HeaderIdempotencyKey, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if ep.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(ep.Secret, ts, body))
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
