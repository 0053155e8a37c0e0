package main

import (
	"math/bits"
	"time"
)

// histSub is the number of sub-buckets per power of two: values are kept with a relative
// error below 1/histSub (about 6 %), like a small HDR histogram.
const histSub = 16

// histBuckets covers every non-negative int64.
const histBuckets = 61 * histSub

// histogram counts durations in log-linear buckets. It is not safe for concurrent use; each
// goroutine keeps its own and they are merged at the end.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    int64
	max    int64
}

// bucketOf returns the bucket index of v (nanoseconds, v >= 0).
func bucketOf(v int64) int {
	if v < histSub {
		return int(v)
	}
	msb := bits.Len64(uint64(v)) - 1 // >= 4
	shift := msb - 4
	mantissa := int(v >> shift) // in [16, 32)
	return (shift+1)*histSub + mantissa - histSub
}

// bucketValue returns the middle of bucket i.
func bucketValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	lower := int64(i%histSub+histSub) << shift
	return lower + (int64(1)<<shift)/2
}

// record adds one duration.
func (h *histogram) record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += v
	if v > h.max {
		h.max = v
	}
}

// merge adds the counts of o to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the value below which a fraction q of the durations lie.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// Latency summarises a histogram, in microseconds.
type Latency struct {
	// Count is the number of samples.
	Count uint64 `json:"count"`
	// P50, P90, P99, Max and Mean are in microseconds.
	P50  float64 `json:"p50Us"`
	P90  float64 `json:"p90Us"`
	P99  float64 `json:"p99Us"`
	Max  float64 `json:"maxUs"`
	Mean float64 `json:"meanUs"`
}

// summary returns the latency summary of h.
func (h *histogram) summary() Latency {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	l := Latency{Count: h.n}
	if h.n == 0 {
		return l
	}
	l.P50, l.P90, l.P99 = us(h.quantile(0.50)), us(h.quantile(0.90)), us(h.quantile(0.99))
	l.Max = us(time.Duration(h.max))
	l.Mean = us(time.Duration(h.sum / int64(h.n)))
	return l
}
