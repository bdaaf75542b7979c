/**
 * The proxy front end's answers: a refusal's problem document, and the
 * failures that can still happen after an allow (the upstream, the framing
 * of the client's request).
 */

import type { ServerResponse } from 'node:http';
import { RegateError } from '../errors.ts';
import { sendProblem } from '../http/problem.ts';
import type { Runtime } from '../runtime.ts';
import { errorAnswer, internal } from './check.ts';
import type { Answer, Verdict } from './verdict.ts';

/** Write a verdict's answer (a deny or a typed error) as a problem response. */
export function sendAnswer(res: ServerResponse, answer: Answer): void {
  sendProblem(res, answer.status, answer.problem, answer.headers);
}

/**
 * A failure after the verdict allowed (upstream down, `duplicate_host`, a
 * bug while forwarding) becomes a problem response — never a second try. If
 * the response already started (upstream died mid-stream), the only honest
 * signal left is to cut the connection. Returns the typed error for the
 * decision log.
 */
export function sendFailure(rt: Runtime, res: ServerResponse, verdict: Verdict, err: unknown): RegateError {
  const e = err instanceof RegateError ? err : internal(rt, verdict.id, verdict.route, err);
  if (res.headersSent) {
    res.destroy();
    return e;
  }
  sendAnswer(res, errorAnswer(verdict.id, e));
  return e;
}
