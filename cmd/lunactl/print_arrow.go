package main

import (
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// arrowPrinter re-encodes the result as an Arrow IPC stream.
type arrowPrinter struct{ iw *ipc.Writer }

func (p *arrowPrinter) write(rec arrow.RecordBatch) error { return p.iw.Write(rec) }

func (p *arrowPrinter) finish(int64, time.Duration) error { return p.iw.Close() }
