import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cloudOverlaps, placeHostGroups, type HostGroupNode } from './placement.js';

// all-hosts
//   east          (cloud gold)
//     east-rack1
//       east-rack1-a
//   west
//     west-rack1  (cloud silver)
//   lab
const groups: HostGroupNode[] = [
  { hostGroupId: 'hg-all', name: 'all-hosts', parentHostGroupId: null },
  { hostGroupId: 'hg-east', name: 'east', parentHostGroupId: 'hg-all' },
  { hostGroupId: 'hg-east-r1', name: 'east-rack1', parentHostGroupId: 'hg-east' },
  { hostGroupId: 'hg-east-r1a', name: 'east-rack1-a', parentHostGroupId: 'hg-east-r1' },
  { hostGroupId: 'hg-west', name: 'west', parentHostGroupId: 'hg-all' },
  { hostGroupId: 'hg-west-r1', name: 'west-rack1', parentHostGroupId: 'hg-west' },
  { hostGroupId: 'hg-lab', name: 'lab', parentHostGroupId: 'hg-all' },
];
const clouds = [
  { cloudId: 'cloud-gold', name: 'gold', hostGroupIds: ['hg-east'] },
  { cloudId: 'cloud-silver', name: 'silver', hostGroupIds: ['hg-west-r1'] },
];

test('a host group is in the cloud of its nearest covered ancestor (nested groups), or none', () => {
  const p = placeHostGroups(groups, clouds);
  assert.equal(p.get('hg-east'), 'cloud-gold');
  assert.equal(p.get('hg-east-r1a'), 'cloud-gold');
  assert.equal(p.get('hg-west-r1'), 'cloud-silver');
  assert.equal(p.get('hg-west'), null);
  assert.equal(p.get('hg-all'), null);
  assert.equal(p.get('hg-lab'), null);
  // broken invariant (two clouds cover east-rack1): the nearest wins, then the first name
  const p2 = placeHostGroups(groups, [
    ...clouds,
    { cloudId: 'cloud-a', name: 'a', hostGroupIds: ['hg-east-r1'] },
    { cloudId: 'cloud-b', name: 'b', hostGroupIds: ['hg-east-r1'] },
  ]);
  assert.equal(p2.get('hg-east-r1a'), 'cloud-a');
  assert.equal(p2.get('hg-east'), 'cloud-gold');
});

test('a cloud may not cover a host group another cloud covers: equal, nested below, or above', () => {
  const overlaps = (ids: string[]): string[] =>
    cloudOverlaps({ name: 'new', hostGroupIds: ids }, clouds, groups).map(
      (o) => `${o.cloudName}:${o.hostGroupName}/${o.otherHostGroupName}`,
    );
  assert.deepEqual(overlaps(['hg-east']), ['gold:east/east']);
  assert.deepEqual(overlaps(['hg-east-r1a']), ['gold:east-rack1-a/east']);
  assert.deepEqual(overlaps(['hg-all']), ['gold:all-hosts/east', 'silver:all-hosts/west-rack1']);
  assert.deepEqual(overlaps(['hg-west']), ['silver:west/west-rack1']);
  assert.deepEqual(overlaps(['hg-lab']), []);
  // the cloud itself (same name) is not an overlap: an idempotent create compares with itself
  assert.deepEqual(cloudOverlaps({ name: 'gold', hostGroupIds: ['hg-east'] }, clouds, groups), []);
});
