/** The fabric's refusals that name an unknown object and the command that lists what exists. */
import { SecondsiteError } from '../../domain/errors.js';

export function unknownName(kind: string, name: string, listCommand: string): SecondsiteError {
  return new SecondsiteError(
    'SECONDSITE_ERR_NOT_FOUND',
    `no ${kind} ${name}; list them with '${listCommand}'`,
    {
      kind,
      name,
    },
  );
}

export function unknownHostGroups(names: readonly string[]): SecondsiteError {
  return new SecondsiteError(
    'SECONDSITE_ERR_NOT_FOUND',
    `no host group ${names.join(', ')}; create it with 'secondsite manager host-group create NAME' or list them with 'secondsite manager host-group list'`,
    { hostGroups: names },
  );
}

export const list = (xs: readonly string[]): string => (xs.length === 0 ? 'none' : xs.join(', '));
