import { describe, expect, it } from 'vitest';
import { csvCell, toCsv } from './csv.js';

describe('CSV export', () => {
  it.each([
    ['=HYPERLINK("http://x")', `"'=HYPERLINK(""http://x"")"`],
    ['+1+1', "'+1+1"],
    ['-2+3', "'-2+3"],
    ['@SUM(A1)', "'@SUM(A1)"],
    ['\tcmd', "'\tcmd"],
    ['\rcmd', `"'\rcmd"`],
    ['plain', 'plain'],
    ['a=b', 'a=b'],
    ['with, comma', '"with, comma"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    ['', ''],
  ])('writes the text %j as %j', (value, cell) => {
    expect(csvCell(value)).toBe(cell);
  });

  it('writes numbers and booleans as they are (a negative number is not a formula), null as empty, lists as JSON', () => {
    expect(csvCell(-5)).toBe('-5');
    expect(csvCell(0.25)).toBe('0.25');
    expect(csvCell(true)).toBe('true');
    expect(csvCell(null)).toBe('');
    expect(csvCell(['range', 'zscore'])).toBe('"[""range"",""zscore""]"');
    expect(csvCell({ a: '=1' })).toBe('"{""a"":""=1""}"');
  });

  it('guards the header too, and ends every line with CRLF', () => {
    expect(
      toCsv(
        ['sensor_id', '=cmd'],
        [
          ['s1', -1.5],
          ['-s2', null],
        ],
      ),
    ).toBe("sensor_id,'=cmd\r\ns1,-1.5\r\n'-s2,\r\n");
    expect(toCsv(['n'], [])).toBe('n\r\n');
  });
});
