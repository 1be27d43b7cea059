package excel

import (
	"archive/zip"
	"strings"
)

// Limits on what a workbook may make the server do. A workbook is a zip of
// XML parts, and a small file can claim gigabytes once inflated (a zip
// bomb); the limits hold memory near the size of the largest part Luna
// keeps in memory, whatever the file claims.
//
// The worksheet streams from the zip, a row at a time, so it is bounded
// only by the total (and each row by maxRowBytes). The shared strings are
// held in memory, at about their size, so they get a cap of their own.
// Every other part Luna reads (workbook, relationships, styles) streams
// too, but keeps what it needs, and all other parts are not read at all;
// they share one cap anyway, so a workbook cannot claim more than a small
// multiple of it.
const (
	// MaxUnzipBytes caps the inflated size of the whole workbook.
	MaxUnzipBytes = 1 << 30
	// MaxSharedStringsBytes caps xl/sharedStrings.xml.
	MaxSharedStringsBytes = 64 << 20
	// MaxOtherPartsBytes caps the parts other than worksheets and shared
	// strings (styles, workbook, relationships, drawings, media …),
	// together.
	MaxOtherPartsBytes = 64 << 20
	// MaxPadCells caps rows × columns an explicit range may add as empty
	// padding past the sheet's last row: Excel's largest sheet padded over
	// 64 columns, or 1,000 columns over 64K rows.
	MaxPadCells = 64 << 20
	// batchCells bounds one Arrow record (rows × columns), so a wide range
	// does not build gigabyte batches.
	batchCells = 1 << 20
)

// checkZip refuses a workbook whose parts claim more than the limits.
// Declared sizes are binding: archive/zip fails a part that inflates past
// the size its header declares.
func checkZip(src, name string) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return errorf("read_xlsx: cannot open \"%s\" as an xlsx workbook: %v", name, err)
	}
	defer zr.Close()
	var total, other uint64
	for _, f := range zr.File {
		size := f.UncompressedSize64
		total += size
		if total > MaxUnzipBytes {
			return errorf("read_xlsx: \"%s\" inflates to more than %d MiB, the limit for a workbook (part %s)", name, MaxUnzipBytes>>20, f.Name)
		}
		part := strings.ToLower(strings.ReplaceAll(f.Name, "\\", "/"))
		switch {
		case strings.HasPrefix(part, "xl/worksheets/sheet"):
		case part == "xl/sharedstrings.xml":
			if size > MaxSharedStringsBytes {
				return errorf("read_xlsx: the shared strings of \"%s\" inflate to %d MiB, more than the limit of %d MiB", name, size>>20, MaxSharedStringsBytes>>20)
			}
		default:
			other += size
			if other > MaxOtherPartsBytes {
				return errorf("read_xlsx: the parts of \"%s\" other than worksheets inflate to more than %d MiB, the limit (part %s)", name, MaxOtherPartsBytes>>20, f.Name)
			}
		}
	}
	return nil
}

// rowsPerBatch is how many rows of width columns go into one record.
func rowsPerBatch(width int) int {
	return max(1, min(batchRows, batchCells/max(width, 1)))
}
