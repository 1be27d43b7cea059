'use strict';
// Writes workbooks with exceljs into the directory given as the first
// argument, and exceljs.json there: for each workbook the columns and rows
// read_xlsx should return, from the values written.
//
//   node exceljs.js OUTDIR          the small workbooks
//   node exceljs.js OUTDIR ROWS     also big.xlsx, ROWS rows × 5 columns from
//                                   the streaming writer, and big.csv with
//                                   the same data
const fs = require('fs');
const path = require('path');
const ExcelJS = require('exceljs');

const out = process.argv[2];
const bigRows = Number(process.argv[3] || 0);
if (!out) {
  console.error('usage: node exceljs.js OUTDIR [ROWS]');
  process.exit(2);
}
const utc = (y, mo, d, h = 0, mi = 0, s = 0) => new Date(Date.UTC(y, mo - 1, d, h, mi, s));
const books = [];

function expected(file, sheet, header, types, rows) {
  books.push({
    file,
    sheet,
    columns: header.map((name, i) => ({name, type: types[i]})),
    rows: rows.map(row => row.map(v => (v instanceof Date ? v.toISOString() : v))),
  });
}

const header = ['id', 'name', 'day', 'stamp', 'paid', 'amount', 'note', 'total'];
const types = ['DOUBLE', 'VARCHAR', 'DATE', 'TIMESTAMP', 'BOOLEAN', 'DOUBLE', 'VARCHAR', 'DOUBLE'];
const rows = [
  [1, 'alice', utc(2025, 1, 31), utc(2025, 1, 31, 10, 30, 0), true, 10.5, 'plain', 21],
  [2, 'bob', utc(2025, 2, 1), utc(2025, 2, 1, 8, 0, 15), false, null, 'bold and italic', 0],
  [3, 'carol', utc(2024, 2, 29), utc(2024, 2, 29, 23, 59, 59), true, -7.25, null, -14.5],
  [4, 'alice', utc(1999, 12, 31), utc(2000, 1, 1, 0, 0, 0), false, 1e6, 'plain', 2e6],
];
// The note column's cells: rich text runs for the second row.
const noteValue = v => (v === 'bold and italic'
  ? {richText: [{text: 'bold', font: {bold: true}}, {text: ' and '}, {text: 'italic', font: {italic: true}}]}
  : v);

function fill(ws) {
  ws.columns = [
    {key: 'id'}, {key: 'name'}, {key: 'day', style: {numFmt: 'yyyy-mm-dd'}},
    {key: 'stamp', style: {numFmt: 'yyyy-mm-dd hh:mm:ss'}}, {key: 'paid'}, {key: 'amount'}, {key: 'note'}, {key: 'total'},
  ];
  const head = ws.addRow(header);
  if (head.commit) head.commit();
  rows.forEach((r, i) => {
    const row = ws.addRow([r[0], r[1], r[2], r[3], r[4], r[5], noteValue(r[6]),
      {formula: `F${i + 2}*2`, result: r[7]}]);
    row.getCell(3).numFmt = 'yyyy-mm-dd';
    row.getCell(4).numFmt = 'yyyy-mm-dd hh:mm:ss';
    if (row.commit) row.commit();
  });
}

async function main() {
  // The in-memory writer: shared strings (rich text among them), styles
  // with custom numFmt ids from 164, a formula's cached result.
  {
    const wb = new ExcelJS.Workbook();
    fill(wb.addWorksheet('Sales'));
    await wb.xlsx.writeFile(path.join(out, 'exceljs-book.xlsx'));
    expected('exceljs-book.xlsx', 'Sales', header, types, rows);
  }
  // The streaming writer without shared strings: text as t="str", rich
  // text as inline strings (t="inlineStr").
  {
    const wb = new ExcelJS.stream.xlsx.WorkbookWriter({filename: path.join(out, 'exceljs-stream.xlsx'), useStyles: true});
    fill(wb.addWorksheet('Sales'));
    await wb.commit();
    expected('exceljs-stream.xlsx', 'Sales', header, types, rows);
  }
  if (bigRows > 0) {
    await big(bigRows);
  }
  fs.writeFileSync(path.join(out, 'exceljs.json'), JSON.stringify({writer: 'exceljs', books}, null, 1));
}

// big writes ROWS rows of id, name, amount, day, flag with the streaming
// writer (shared strings off, styles on), and the same rows as CSV.
async function big(n) {
  const wb = new ExcelJS.stream.xlsx.WorkbookWriter({filename: path.join(out, 'big.xlsx'), useStyles: true});
  const ws = wb.addWorksheet('Data');
  ws.columns = [{key: 'id'}, {key: 'name'}, {key: 'amount'}, {key: 'day', style: {numFmt: 'yyyy-mm-dd'}}, {key: 'flag'}];
  ws.addRow(['id', 'name', 'amount', 'day', 'flag']).commit();
  const csv = fs.createWriteStream(path.join(out, 'big.csv'));
  csv.write('id,name,amount,day,flag\n');
  const day0 = Date.UTC(2020, 0, 1);
  for (let i = 1; i <= n; i++) {
    const name = 'name-' + (i % 1000);
    const amount = (i % 10000) / 4;
    const day = new Date(day0 + (i % 2000) * 86400000);
    const flag = i % 3 === 0;
    const row = ws.addRow([i, name, amount, day, flag]);
    row.getCell(4).numFmt = 'yyyy-mm-dd';
    row.commit();
    if (!csv.write(`${i},${name},${amount},${day.toISOString().slice(0, 10)},${flag}\n`)) {
      await new Promise(resolve => csv.once('drain', resolve));
    }
  }
  ws.commit();
  await wb.commit();
  await new Promise((resolve, reject) => csv.end(err => (err ? reject(err) : resolve())));
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
