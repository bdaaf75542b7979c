/** `regate_attribute_lookups_total` and `regate_attribute_fetch_duration_seconds` (routes[].resource). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RESOURCE_REASONS } from '../../../src/errors.ts';
import { ATTRIBUTE_LOOKUP_RESULTS, createMetrics, REQUEST_REASONS } from '../../../src/observe/metrics.ts';
import { labelValues, sampleValue, scrape } from '../../helpers/metrics.ts';

const options = { routeIds: ['files', 'plain'], bundle: { name: 'regate', revision: 'r' }, defaultMetrics: false } as const;

describe('attribute lookup metrics', () => {
  it('starts every result at 0 for routes with a resource, and only for them', async () => {
    const m = createMetrics(options);
    m.configure({ routeIds: ['files', 'plain'], resourceRouteIds: ['files'] });
    const exp = await scrape(m.registry);
    for (const result of ATTRIBUTE_LOOKUP_RESULTS) assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'files', result }), 0, result);
    assert.equal(sampleValue(exp, 'regate_attribute_fetch_duration_seconds_count', { route: 'files' }), 0);
    assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'plain', result: 'hit' }), undefined);
  });

  it('counts lookups and times catalog requests; labels stay bounded', async () => {
    const m = createMetrics(options);
    m.configure({ routeIds: ['files'], resourceRouteIds: ['files'] });
    m.attributeLookup('files', 'miss');
    m.attributeLookup('files', 'hit');
    m.attributeLookup('files', 'hit');
    m.attributeLookup('files', 'resource_timeout');
    m.attributeLookup('files', 'made-up');
    m.attributeLookup('not-a-route', 'hit');
    m.attributeFetched('files', 0.004);
    m.attributeFetched('files', Number.NaN);
    const exp = await scrape(m.registry);
    assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'files', result: 'hit' }), 2);
    assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'files', result: 'miss' }), 1);
    assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'files', result: 'resource_timeout' }), 1);
    assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'files', result: 'other' }), 1);
    assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: '_unmatched', result: 'hit' }), 1);
    assert.deepEqual([...labelValues(exp, 'regate_attribute_lookups_total', 'route')].sort(), ['_unmatched', 'files']);
    assert.equal(sampleValue(exp, 'regate_attribute_fetch_duration_seconds_count', { route: 'files' }), 1);
    assert.equal(sampleValue(exp, 'regate_attribute_fetch_duration_seconds_bucket', { route: 'files', le: '0.005' }), 1);
  });

  it('knows the refusal reasons of the resource and body stages (not counted as "other")', () => {
    for (const reason of [...RESOURCE_REASONS, 'body_too_large', 'body_timeout']) assert.ok((REQUEST_REASONS as readonly string[]).includes(reason), reason);
  });
});
