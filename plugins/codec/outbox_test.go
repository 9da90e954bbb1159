package codec

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestOutboxBatches(t *testing.T) {
	tests := []struct {
		name   string
		opts   BatchOptions
		frames int
		size   int
	}{
		{"natural", BatchOptions{MaxBytes: 1024}, 1000, 100},
		{"linger", BatchOptions{MaxBytes: 1024, Linger: time.Millisecond}, 500, 10},
		{"large frames", BatchOptions{MaxBytes: 64}, 50, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOutbox(tt.opts, true)
			var mu sync.Mutex
			total, batches := 0, 0
			done := make(chan error, 1)
			go func() {
				done <- o.run(func(b []byte) error {
					mu.Lock()
					defer mu.Unlock()
					for rest := b; len(rest) > 0; {
						var f Frame
						var err error
						if rest, err = NextFrame(rest, &f); err != nil {
							return err
						}
						total++
					}
					batches++
					return nil
				})
			}()
			payload := make([]byte, tt.size)
			for i := range tt.frames {
				if err := o.add(frameSize(len(payload)), func(b []byte) []byte {
					return AppendData(b, KindData, uint64(i), payload)
				}); err != nil {
					t.Fatal(err)
				}
			}
			stop := errors.New("stop")
			o.close(stop)
			if err := <-done; !errors.Is(err, stop) {
				t.Fatalf("run: %v", err)
			}
			if total != tt.frames {
				t.Fatalf("sent %d frames, want %d", total, tt.frames)
			}
			if batches > tt.frames {
				t.Fatalf("%d batches for %d frames", batches, tt.frames)
			}
			t.Logf("%d frames in %d batches", total, batches)
		})
	}
}

func TestOutboxBacklog(t *testing.T) {
	o := newOutbox(BatchOptions{MaxBytes: 100, MaxPending: 200}, false)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = o.add(frameSize(50), func(b []byte) []byte { return AppendData(b, KindData, 1, make([]byte, 50)) })
	}
	if !errors.Is(err, ErrBacklog) {
		t.Fatalf("add on a full outbox: %v, want ErrBacklog", err)
	}
	o.close(ErrStreamClosed)
	if err := o.add(10, func(b []byte) []byte { return b }); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("add on a closed outbox: %v", err)
	}
}
