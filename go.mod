module github.com/timgw/timgw

go 1.26.8

require (
	github.com/bytedance/sonic v1.15.0 // packet bodies: ~2x encoding/json on the chat path; already in the graph via hertz
	github.com/chromedp/chromedp v0.23.0 // tests only: drives headless Chromium for the dashboard and chat page tests
	github.com/cloudwego/hertz v0.10.4
	github.com/fsnotify/fsnotify v1.10.1
	github.com/gobwas/ws v1.5.0 // WebSocket framing parsed from event-loop buffers, no goroutine per connection
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/hashicorp/go-hclog v1.6.3 // indirect
	github.com/hashicorp/go-plugin v1.8.0
	github.com/panjf2000/ants/v2 v2.12.1
	github.com/panjf2000/gnet/v2 v2.9.7 // event loop for TCP/WebSocket connections (1.6 KiB per idle logged-in connection, README Performance)
	github.com/prometheus/client_golang v1.25.0
	github.com/prometheus/client_model v0.6.3
	github.com/tidwall/gjson v1.14.4 // reads "cmd" of a WebSocket frame without a full decode
	github.com/yuin/gopher-lua v1.1.2
	go.etcd.io/bbolt v1.5.0 // the embedded default storage plugin
	go.mongodb.org/mongo-driver/v2 v2.10.0
	golang.org/x/sync v0.24.0 // indirect
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/nats-io/nats-server/v2 v2.15.2 // the cluster bus embedded in every node (cluster.nats.embedded), so small clusters need no NATS of their own
	github.com/nats-io/nats.go v1.55.0 // the cluster bus client
)

require (
	github.com/antithesishq/antithesis-sdk-go v0.8.0-default-no-op // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/bytedance/gopkg v0.1.3 // indirect
	github.com/bytedance/sonic/loader v0.5.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/cloudwego/base64x v0.1.6 // indirect
	github.com/cloudwego/gopkg v0.1.4 // indirect
	github.com/cloudwego/netpoll v0.7.2 // indirect
	github.com/fatih/color v1.13.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/hashicorp/yamux v0.1.2 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/klauspost/cpuid/v2 v2.2.9 // indirect
	github.com/mattn/go-colorable v0.1.12 // indirect
	github.com/mattn/go-isatty v0.0.17 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/nats-io/jwt/v2 v2.8.2 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/oklog/run v1.1.0 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.0 // indirect
	github.com/twitchyliquid64/golang-asm v0.15.1 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/xdg-go/scram v1.4.0 // indirect
	github.com/xdg-go/stringprep v1.0.4 // indirect
	github.com/youmark/pkcs8 v0.0.0-20240726163527-a2c0da244d78 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	go.uber.org/zap v1.27.0 // indirect
	golang.org/x/arch v0.0.0-20210923205945-b76863e36670 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	golang.org/x/time v0.16.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	gopkg.in/natefinch/lumberjack.v2 v2.2.1 // indirect
)

// The plugin SDKs are modules of their own (a third-party plugin requires one alone,
// plugins/README.md "Building out of tree"); the gateway builds them from this tree.
require (
	github.com/timgw/timgw/plugins/codec v0.0.0
	github.com/timgw/timgw/plugins/storage v0.0.0
)

replace (
	github.com/timgw/timgw/plugins/codec => ./plugins/codec
	github.com/timgw/timgw/plugins/storage => ./plugins/storage
)
