// Package client is a Go client for the Luna server.
//
// A Luna connection carries framed text requests in one direction and Arrow
// IPC streams in the other: every request (an execute, a query or an AUTH
// line) is answered by exactly one complete Arrow IPC stream, in request
// order. Executes and failed queries are answered with a one-row "status
// table" whose error column is OK or an error message; queries are answered
// with their own schema and record batches, which [Rows] hands out one batch
// at a time without buffering the whole result.
//
// A query that fails after rows have been sent is ended by an abort marker
// instead of an end-of-stream marker. The client reports it as an [*Error]
// with Aborted set, so a partial result never looks complete.
//
// A [Conn] runs one request at a time and is not safe for concurrent use.
// While a [Rows] is open its Conn is busy; close the Rows (or read it to the
// end) before issuing the next request. A Conn whose response stream was
// left part-way, through a cancelled context, an I/O error or an abort, is
// broken: its socket is closed and later calls fail with [ErrBroken].
package client
