import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hideVariableBraces, interpolate, restoreBraces, typedVariable } from '../../../src/config/env-vars.ts';

describe('env-vars', () => {
  it('hides the braces of ${NAME} and ${NAME:-default} at the same length, and restores them', () => {
    const text = 'a: {port: ${PORT}, host: "${H:-x}", lit: $${NOT}, bad: ${lower}}\n';
    const hidden = hideVariableBraces(text);
    assert.equal(hidden.length, text.length, 'every offset (so every line:col) unchanged');
    assert.ok(!hidden.includes('${PORT}') && !hidden.includes('${H:-x}'));
    assert.ok(hidden.includes('$${NOT}') && hidden.includes('${lower}'), 'escapes and malformed references are left for the parser and interpolate()');
    assert.equal(restoreBraces(hidden), text);
    assert.equal(hideVariableBraces('no variables'), 'no variables');
    const clash = 'x: "\uE000" ${A}';
    assert.equal(hideVariableBraces(clash), clash, 'a text already holding the private-use characters is left alone');
  });

  it('interpolates, with defaults for unset or empty variables and errors naming the variable', () => {
    assert.equal(interpolate('http://${H}:${P:-80}/', { H: 'svc' }), 'http://svc:80/');
    assert.equal(interpolate('${P:-80}', { P: '' }), '80');
    assert.equal(interpolate('${P:-80}', { P: '8080' }), '8080');
    assert.equal(interpolate('$${X}', {}), '${X}');
    assert.deepEqual(interpolate('${MISSING}', {}), { problem: 'environment variable MISSING is not set' });
    assert.match((interpolate('${bad}', {}) as { problem: string }).problem, /invalid variable reference "\$\{bad\}"/);
  });

  it('types a whole-value reference as the schema wants at the key path', () => {
    assert.equal(typedVariable('${P}', '8443', '/listen/proxy/port'), 8443);
    assert.equal(typedVariable('${P}', '8443', '/upstreams/app/url'), '8443', 'a string key keeps the string');
    assert.equal(typedVariable('${E}', 'false', '/decision_log/enabled'), false);
    assert.equal(typedVariable('${W}', 'auto', '/workers'), 'auto');
    assert.equal(typedVariable('${W}', '4', '/workers'), 4);
    assert.equal(typedVariable('v${P}', 'v1', '/listen/proxy/port'), 'v1', 'not a whole-value reference: left to the schema');
    assert.equal(typedVariable('${M}', '5', '/routes/3/resource/ttl_s'), 5, 'array indexes do not change the schema');
    assert.deepEqual(typedVariable('${P}', '80a', '/listen/proxy/port'), { problem: 'environment variable P is "80a", but this key needs an integer' });
    assert.deepEqual(typedVariable('${E}', 'yes', '/decision_log/enabled'), { problem: 'environment variable E is "yes", but this key needs true or false' });
  });
});
