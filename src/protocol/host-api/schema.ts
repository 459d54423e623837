/** Shared helpers for the host control API schemas: parse a body or fail with every problem named. */
import type { z } from 'zod';
import { SecondsiteError } from '../../domain/errors.js';

export function parseBody<S extends z.ZodTypeAny>(schema: S, body: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(body ?? {});
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `invalid ${what}: ${problems.join('; ')}`, {
      problems,
    });
  }
  return r.data as z.infer<S>;
}
