'use strict';
// Writes workbooks with SheetJS (the npm package xlsx) into the directory
// given as the first argument, and sheetjs.json there: for each workbook
// the columns and rows read_xlsx should return, from the values written.
//
// Dates are written in UTC; run with TZ=UTC so SheetJS's serial dates
// (which use the local zone) agree with the ISO text of its t="d" cells.
const fs = require('fs');
const path = require('path');
const XLSX = require('xlsx');

const out = process.argv[2];
if (!out) {
  console.error('usage: node sheetjs.js OUTDIR');
  process.exit(2);
}
const utc = (y, mo, d, h = 0, mi = 0, s = 0) => new Date(Date.UTC(y, mo - 1, d, h, mi, s));
const books = [];

// One sheet of rows given as [value, format] cells; a null value is an
// empty cell (SheetJS writes no <c> for it).
function sheet(header, rows, formats) {
  const ws = XLSX.utils.aoa_to_sheet([header, ...rows], {cellDates: true});
  rows.forEach((row, r) => {
    row.forEach((v, c) => {
      const ref = XLSX.utils.encode_cell({r: r + 1, c});
      if (ws[ref] && formats[c]) ws[ref].z = formats[c];
    });
  });
  return ws;
}

// expected turns what was written into what read_xlsx returns: dates as
// ISO text for DATE and TIMESTAMP columns, the rest as written.
function expected(file, sheetName, header, types, rows) {
  books.push({
    file,
    sheet: sheetName,
    columns: header.map((name, i) => ({name, type: types[i]})),
    rows: rows.map(row => row.map(v => (v instanceof Date ? v.toISOString() : v))),
  });
}

const header = ['id', 'label', 'day', 'stamp', 'flag', 'amount', 'note'];
const types = ['DOUBLE', 'VARCHAR', 'DATE', 'TIMESTAMP', 'BOOLEAN', 'DOUBLE', 'VARCHAR'];
const rows = [
  [1, 'alpha', utc(2024, 1, 15), utc(2024, 1, 15, 10, 30, 0), true, 10.5, 'first'],
  [2, 'beta', utc(2024, 2, 29), utc(2024, 2, 29, 23, 59, 59), false, -3, null],
  [3, 'gamma', utc(1999, 12, 31), utc(2000, 1, 1, 0, 0, 1), true, null, 'third'],
  [4, 'delta', utc(2025, 7, 4), utc(2025, 7, 4, 12, 0, 0), false, 0.25, 'fourth'],
];
// Date cells: the default date format (id 14) and a custom date-time one,
// which SheetJS numbers from 60.
const formats = [null, null, null, 'yyyy-mm-dd hh:mm:ss', null, null, null];

// cellDates: dates as t="d" cells holding ISO 8601 text; strings as
// t="str" cells (SheetJS's default without bookSST).
{
  const wb = XLSX.utils.book_new();
  XLSX.utils.book_append_sheet(wb, sheet(header, rows, formats), 'Data');
  XLSX.writeFile(wb, path.join(out, 'sheetjs-cell-dates.xlsx'), {cellDates: true});
  expected('sheetjs-cell-dates.xlsx', 'Data', header, types, rows);
}

// Serial dates with custom formats: 'yyyy-mm-dd' and 'yyyy-mm-dd
// hh:mm:ss' become numFmtId 61 and 60, below the usual custom range.
// Shared strings (bookSST) for the text.
{
  const wb = XLSX.utils.book_new();
  const f = [null, null, 'yyyy-mm-dd', 'yyyy-mm-dd hh:mm:ss', null, null, null];
  XLSX.utils.book_append_sheet(wb, sheet(header, rows, f), 'Data');
  XLSX.writeFile(wb, path.join(out, 'sheetjs-custom-formats.xlsx'), {bookSST: true});
  expected('sheetjs-custom-formats.xlsx', 'Data', header, types, rows);
}

// Shared strings (bookSST), the header included; dates as t="d" with a
// time-only column and a date-only custom format.
{
  const h = ['name', 'born', 'alarm', 'score'];
  const r = [
    ['ann', utc(1990, 5, 17), utc(1899, 12, 31, 6, 45, 0), 7],
    ['bo', utc(1985, 11, 2), utc(1899, 12, 31, 22, 15, 30), 8.5],
    ['cy', null, utc(1899, 12, 31, 0, 0, 0), null],
  ];
  const wb = XLSX.utils.book_new();
  XLSX.utils.book_append_sheet(wb, sheet(h, r, [null, 'dd/mm/yyyy', 'hh:mm:ss', null]), 'People');
  XLSX.writeFile(wb, path.join(out, 'sheetjs-sst.xlsx'), {cellDates: true, bookSST: true});
  expected('sheetjs-sst.xlsx', 'People', h, ['VARCHAR', 'DATE', 'TIME', 'DOUBLE'], r);
}

// Mixed cells: the first data row decides each column's type and later
// cells are cast to it: a date cell in a DOUBLE column is its serial, a
// serial in a DATE or TIMESTAMP column its date, a date cell in a VARCHAR
// column its ISO text, and text that is no date an error (NULL with
// ignore_errors).
{
  const h = ['when', 'day', 'stamp', 'note', 'due'];
  const written = [
    [45306.5, utc(2024, 3, 1), utc(2024, 3, 1, 8, 0, 0), 'ok', utc(2024, 4, 1)],
    [utc(2024, 1, 15, 12, 0, 0), 45353, 45353.25, utc(2024, 3, 3), 'soon'],
  ];
  const expect = [
    [45306.5, utc(2024, 3, 1), utc(2024, 3, 1, 8, 0, 0), 'ok', utc(2024, 4, 1)],
    [45306.5, utc(2024, 3, 2), utc(2024, 3, 2, 6, 0, 0), '2024-03-03T00:00:00.000Z', null],
  ];
  const wb = XLSX.utils.book_new();
  XLSX.utils.book_append_sheet(wb, sheet(h, written, [null, null, 'yyyy-mm-dd hh:mm:ss', null, null]), 'Mixed');
  XLSX.writeFile(wb, path.join(out, 'sheetjs-mixed.xlsx'), {cellDates: true});
  expected('sheetjs-mixed.xlsx', 'Mixed', h, ['DOUBLE', 'DATE', 'TIMESTAMP', 'VARCHAR', 'DATE'], expect);
  const book = books[books.length - 1];
  book.options = 'ignore_errors = true';
  book.errors = [{options: '', parts: ['sheet "Mixed" cell E3', "'soon'", 'DATE']}];
}

fs.writeFileSync(path.join(out, 'sheetjs.json'), JSON.stringify({writer: 'xlsx@' + XLSX.version, books}, null, 1));
