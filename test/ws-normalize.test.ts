import { describe, expect, it } from 'vitest';
import { canonicalDate, canonicalNumber, normalizeForComparison as norm, textF1 } from '../src/weak-supervision/normalize.js';

describe('normalizeForComparison', () => {
  it('folds case, whitespace, punctuation and unicode forms', () => {
    expect(norm('  Know Your   Bible:\nAll 66 Books ')).toBe('know your bible all 66 books');
    expect(norm('KNOW YOUR BIBLE — ALL 66 BOOKS!')).toBe(norm('know your bible all 66 books'));
    expect(norm('Ｆｕｌｌ\u00a0width ﬁle')).toBe('full width file');
    expect(norm('Café')).toBe(norm('Cafe'));
    expect(norm("Lydia's Charm")).toBe(norm('Lydias Charm'));
    expect(norm('978-1-60260-015-7')).toBe(norm('9781602600157'));
    expect(norm('Barnes &amp; Noble')).toBe(norm('Barnes & Noble'));
    expect(norm('Smith,John')).toBe('smith john');
  });

  it('keeps different values different', () => {
    expect(norm('Paul Kent')).not.toBe(norm('Paul Kents'));
    expect(norm('2008')).not.toBe(norm('2009'));
    expect(norm('0042')).not.toBe(norm('42'));
  });

  it('canonicalizes numbers without losing digits', () => {
    expect(norm('$1,234.50')).toBe('1234.5');
    expect(norm('1234.500')).toBe(norm('1,234.5'));
    expect(norm('+7')).toBe('7');
    expect(norm('-0.0')).toBe('0');
    expect(norm(12.5)).toBe('12.5');
    expect(canonicalNumber('12345678901234567890')).toBe('12345678901234567890');
    expect(canonicalNumber('12 pages')).toBeNull();
    expect(norm('1,234 pages')).toBe(norm('1234 pages'));
  });

  it('canonicalizes date forms to ISO', () => {
    for (const form of ['2008-01-05', '2008/1/5', '1/5/2008', 'January 5, 2008', 'Jan. 5th 2008', '5 January 2008', 'jan 5 2008']) {
      expect(norm(form), form).toBe('2008-01-05');
    }
    expect(norm('25/12/2010')).toBe('2010-12-25');
    expect(norm('March 2010')).toBe('2010-03');
    expect(norm('2010')).toBe('2010');
    expect(canonicalDate('2010-02-30')).toBeNull();
    expect(canonicalDate('Smarch 5, 2010')).toBeNull();
  });

  it('treats empty outputs as abstains and multi-valued outputs as sets', () => {
    expect(norm(null)).toBeNull();
    expect(norm(undefined)).toBeNull();
    expect(norm('  ')).toBeNull();
    expect(norm('...')).toBeNull();
    expect(norm([])).toBeNull();
    expect(norm(['', null])).toBeNull();
    expect(norm(['B. Author', 'A Writer', 'a writer'])).toBe(norm(['A Writer', 'B Author']));
  });
});

describe('textF1', () => {
  it('is exact match after the paper normalization', () => {
    expect(textF1('The Bible!', 'bible')).toBe(1);
    expect(textF1('An Apple', 'apple')).toBe(1);
    expect(textF1('cats', 'dogs')).toBe(0);
  });

  it('scores partial token overlap', () => {
    // predicted 3 tokens, gold 2, 2 shared: P = 2/3, R = 1, F1 = 0.8
    expect(textF1('Paul Kent Jr', 'Paul Kent')).toBeCloseTo(0.8, 10);
    // repeated tokens are counted with multiplicity
    expect(textF1('kent kent', 'kent')).toBeCloseTo(2 / 3, 10);
  });

  it('matches any of several gold values, or all of them', () => {
    expect(textF1('John Smith', ['Mary Jones', 'John Smith'])).toBe(1);
    expect(textF1(['Mary Jones', 'John Smith'], ['Mary Jones', 'John Smith'])).toBe(1);
    expect(textF1('Mary', ['Mary Jones', 'John Smith'])).toBeCloseTo(2 / 3, 10);
  });

  it('handles empty sides', () => {
    expect(textF1(null, null)).toBe(1);
    expect(textF1('', [])).toBe(1);
    expect(textF1('x', null)).toBe(0);
    expect(textF1(null, 'x')).toBe(0);
  });
});
