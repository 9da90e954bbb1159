package admin

import (
	"net/http"

	sdkjs "github.com/timgw/timgw/sdk/js"
)

// The JavaScript client SDK (sdk/js), served beside the pages: /chat imports it, and any
// page may (import { TimClient } from "/sdk/timgw.js"). Public, like the pages.
var sdkAssets = []struct {
	path, contentType string
	body              []byte
}{
	{"/sdk/timgw.js", "text/javascript; charset=utf-8", sdkjs.Module},
	{"/sdk/timgw.d.ts", "text/plain; charset=utf-8", sdkjs.Types},
}

// The SDK's paths join Paths here, so that routers mounting Handler serve them too.
func init() {
	for _, a := range sdkAssets {
		Paths = append(Paths, struct{ Method, Path string }{"GET", a.path})
	}
}

// mountSDK serves the SDK's files on mux.
func mountSDK(mux *http.ServeMux) {
	for _, a := range sdkAssets {
		mux.Handle("GET "+a.path, asset(a.contentType, a.body))
	}
}

// asset serves an embedded file with its content type.
func asset(contentType string, b []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
}
