import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitIpRange, subnetProblems, validateSubnets } from './vm-network.rules.js';

const pool = (text: string): { rangeStart: string; rangeEnd: string } => {
  const r = splitIpRange(text);
  assert.ok(r, text);
  return r;
};

test('a valid subnet with a gateway and two pools is normalized; pools are named pool-1, pool-2 in address order', () => {
  assert.deepEqual(
    validateSubnets([
      {
        cidr: '10.1.0.0/24',
        gateway: '10.1.0.1',
        ipPools: [pool(' 10.1.0.200 - 10.1.0.250 '), pool('10.1.0.100-10.1.0.199')],
      },
    ]),
    [
      {
        cidr: '10.1.0.0/24',
        gateway: '10.1.0.1',
        ipPools: [
          { name: 'pool-1', rangeStart: '10.1.0.100', rangeEnd: '10.1.0.199' },
          { name: 'pool-2', rangeStart: '10.1.0.200', rangeEnd: '10.1.0.250' },
        ],
      },
    ],
  );
  assert.deepEqual(validateSubnets([{ cidr: '192.168.5.0/24' }]), [
    { cidr: '192.168.5.0/24', gateway: null, ipPools: [] },
  ]);
});

test('each wrong subnet, gateway or pool gives a message that says what to fix', () => {
  const cases: [Parameters<typeof subnetProblems>[0], RegExp][] = [
    [[], /needs a subnet/],
    [[{ cidr: '10.1.0.5/24' }], /host bits set; the subnet is 10\.1\.0\.0\/24/],
    [
      [{ cidr: '10.1.0.0/24' }, { cidr: '10.1.0.128/25' }],
      /subnets 10\.1\.0\.0\/24 and 10\.1\.0\.128\/25 overlap/,
    ],
    [
      [{ cidr: '10.1.0.0/24', gateway: '10.2.0.1' }],
      /gateway 10\.2\.0\.1 is not a host address of subnet 10\.1\.0\.0\/24/,
    ],
    [[{ cidr: '10.1.0.0/24', gateway: '10.1.0.255' }], /not its network or broadcast address/],
    [[{ cidr: '10.1.0.0/24', gateway: 'gw' }], /gateway 'gw' is not an IPv4 address/],
    [
      [{ cidr: '10.1.0.0/24', ipPools: [pool('10.1.1.10-10.1.1.20')] }],
      /IP pool 10\.1\.1\.10-10\.1\.1\.20 is not inside subnet 10\.1\.0\.0\/24 \(its host addresses are 10\.1\.0\.1-10\.1\.0\.254\)/,
    ],
    [[{ cidr: '10.1.0.0/24', ipPools: [pool('10.1.0.0-10.1.0.20')] }], /not inside subnet/],
    [[{ cidr: '10.1.0.0/24', ipPools: [pool('10.1.0.20-10.1.0.10')] }], /ends before it starts/],
    [
      [{ cidr: '10.1.0.0/24', ipPools: [pool('10.1.0.10-10.1.0.50'), pool('10.1.0.50-10.1.0.60')] }],
      /IP pools 10\.1\.0\.10-10\.1\.0\.50 and 10\.1\.0\.50-10\.1\.0\.60 overlap/,
    ],
    [
      [{ cidr: '10.1.0.0/24', gateway: '10.1.0.1', ipPools: [pool('10.1.0.1-10.1.0.50')] }],
      /holds the gateway 10\.1\.0\.1/,
    ],
    [[{ cidr: '10.1.0.0/24', ipPools: [{ rangeStart: 'x', rangeEnd: '10.1.0.2' }] }], /not START-END/],
  ];
  for (const [subnets, expected] of cases) {
    const problems = subnetProblems(subnets);
    assert.equal(problems.length, 1, `${JSON.stringify(subnets)}: ${problems.join(' | ')}`);
    assert.match(problems[0] ?? '', expected);
  }
  assert.throws(
    () => validateSubnets([{ cidr: '10.1.0.0/24', gateway: '10.9.9.9' }]),
    (e: Error & { code?: string }) =>
      e.code === 'SECONDSITE_ERR_INVALID_ARGUMENT' && /gateway/.test(e.message),
  );
  assert.equal(splitIpRange('10.1.0.1'), null);
});
