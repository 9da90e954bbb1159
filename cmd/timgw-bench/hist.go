package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is a lock-free log-linear latency histogram in the manner of HDR histograms:
// values below 64 ns have a bucket each, larger ones fall into 32 sub-buckets per power
// of two, so a reported quantile is within about 3% of the true value. It takes constant
// memory whatever the number of samples, and Record may be called from many goroutines.
type histogram struct {
	buckets [histBuckets]atomic.Uint64
	count   atomic.Uint64
	sum     atomic.Uint64
	max     atomic.Int64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits // sub-buckets per power of two
	histLinear  = 2 * histSub      // values below this have a bucket each
	histBuckets = histLinear + (64-histSubBits-1)*histSub
)

func histIndex(v int64) int {
	if v < histLinear {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1 // >= 1
	return histLinear + (shift-1)*histSub + int(uint64(v)>>shift) - histSub
}

// histUpper is the largest value that falls into bucket i.
func histUpper(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	i -= histLinear
	shift := i/histSub + 1
	m := int64(i%histSub + histSub)
	return (m+1)<<shift - 1
}

// Record adds one sample.
func (h *histogram) Record(d time.Duration) { h.RecordN(d, 1) }

// RecordN adds n samples of the same value.
func (h *histogram) RecordN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	v := int64(d)
	h.buckets[histIndex(v)].Add(n)
	h.count.Add(n)
	h.sum.Add(uint64(max(v, 0)) * n)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is the number of samples.
func (h *histogram) Count() uint64 { return h.count.Load() }

// Max is the largest sample, exact.
func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean is the average sample.
func (h *histogram) Mean() time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the upper bound of the bucket holding the q-quantile (0 < q <= 1),
// capped at the largest sample.
func (h *histogram) Quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return min(time.Duration(histUpper(i)), h.Max())
		}
	}
	return h.Max()
}
