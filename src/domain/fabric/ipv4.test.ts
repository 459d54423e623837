import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../random.js';
import {
  formatCidr,
  formatIpv4,
  isUsableHostAddress,
  parseCidr,
  parseIpv4,
  rangesOverlap,
  subnetsOverlap,
} from './ipv4.js';

test('IPv4 addresses parse and format as dotted quads; malformed ones are null', () => {
  assert.equal(parseIpv4('10.1.0.1'), 10 * 2 ** 24 + 256 * 0 + 65536 + 1);
  assert.equal(parseIpv4('255.255.255.255'), 2 ** 32 - 1);
  assert.equal(parseIpv4('0.0.0.0'), 0);
  for (const bad of ['10.1.0', '10.1.0.256', '10.01.0.1', '1.2.3.4.5', '', 'a.b.c.d', '1..2.3', '-1.2.3.4'])
    assert.equal(parseIpv4(bad), null, bad);
  const seed = Number(process.env['SECONDSITE_SEED'] ?? 7);
  const rng = new Rng(seed);
  for (let i = 0; i < 1000; i++) {
    const v = rng.nextU32();
    assert.equal(parseIpv4(formatIpv4(v)), v, `seed ${seed}: ${v}`);
  }
});

test('a subnet is ADDRESS/PREFIX without host bits; the message names the subnet meant', () => {
  const ok = parseCidr('10.1.0.0/24');
  assert.ok(ok.ok);
  assert.equal(formatCidr(ok.subnet), '10.1.0.0/24');
  const hostBits = parseCidr('10.1.0.5/24');
  assert.ok(!hostBits.ok);
  assert.match(hostBits.message, /host bits set; the subnet is 10\.1\.0\.0\/24/);
  for (const bad of ['10.1.0.0', '10.1.0.0/33', '10.1.0/24', '10.1.0.0/x'])
    assert.ok(!parseCidr(bad).ok, bad);
  assert.ok(parseCidr('0.0.0.0/0').ok);
  assert.ok(parseCidr('10.1.0.7/32').ok);
});

test('host addresses exclude network and broadcast, except in /31 and /32; overlaps', () => {
  const c = parseCidr('10.1.0.0/24');
  assert.ok(c.ok);
  const at = (s: string): number => parseIpv4(s) ?? -1;
  assert.equal(isUsableHostAddress(c.subnet, at('10.1.0.0')), false);
  assert.equal(isUsableHostAddress(c.subnet, at('10.1.0.1')), true);
  assert.equal(isUsableHostAddress(c.subnet, at('10.1.0.254')), true);
  assert.equal(isUsableHostAddress(c.subnet, at('10.1.0.255')), false);
  assert.equal(isUsableHostAddress(c.subnet, at('10.1.1.1')), false);
  const p2p = parseCidr('10.2.0.0/31');
  assert.ok(p2p.ok);
  assert.equal(isUsableHostAddress(p2p.subnet, at('10.2.0.0')), true);
  assert.ok(rangesOverlap({ start: 1, end: 5 }, { start: 5, end: 9 }));
  assert.ok(!rangesOverlap({ start: 1, end: 4 }, { start: 5, end: 9 }));
  const wide = parseCidr('10.1.0.0/16');
  const other = parseCidr('10.2.0.0/24');
  assert.ok(wide.ok && other.ok);
  assert.ok(subnetsOverlap(wide.subnet, c.subnet));
  assert.ok(!subnetsOverlap(other.subnet, c.subnet));
});
