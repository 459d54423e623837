/**
 * Path patterns of the JSON APIs (host control and peer APIs, vault API): `/v1/disks/:diskId` style,
 * `:name` segments match one percent-encoded path segment. Pure; shared by every HTTP server here.
 */
import { SecondsiteError } from '../../domain/errors.js';

export interface RoutePattern {
  readonly regex: RegExp;
  readonly names: readonly string[];
}

export function compileRoutePath(path: string): RoutePattern {
  const names: string[] = [];
  const pattern = path
    .split('/')
    .map((seg) => {
      if (seg.startsWith(':')) {
        names.push(seg.slice(1));
        return '([^/]+)';
      }
      return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return { regex: new RegExp(`^${pattern}$`), names };
}

/** The decoded parameters of a match; a bad percent-encoding is INVALID_ARGUMENT (a 400), not a crash. */
export function routeParams(pattern: RoutePattern, match: RegExpExecArray): Record<string, string> {
  const params: Record<string, string> = {};
  pattern.names.forEach((name, i) => {
    try {
      params[name] = decodeURIComponent(match[i + 1] ?? '');
    } catch {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `the path parameter ${name} is not valid percent-encoding`,
      );
    }
  });
  return params;
}
