/** Names and paths inside a relationship's directory (see docs/design/recovery-points.md section 3). */
import { join } from 'node:path';
import { SecondsiteError } from '../../domain/errors.js';

const PLAIN_NAME = /^[A-Za-z0-9._-]{1,128}$/;

/** Throws SECONDSITE_ERR_UNSAFE_PATH unless `name` is a plain file name. */
export function checkPlainName(kind: string, name: string): void {
  if (!PLAIN_NAME.test(name) || name === '.' || name === '..' || name.endsWith('.tmp')) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_UNSAFE_PATH',
      `${kind} "${name}" is not a plain name; use letters, digits, '.', '_' and '-' (at most 128)`,
      { kind, name },
    );
  }
}

export class StoreLayout {
  constructor(readonly dir: string) {}
  get catalogue(): string {
    return join(this.dir, 'catalogue.meta');
  }
  get disksDir(): string {
    return join(this.dir, 'disks');
  }
  base(diskId: string): string {
    return join(this.dir, 'disks', `${diskId}.base`);
  }
  get undoDir(): string {
    return join(this.dir, 'undo');
  }
  undo(fileName: string): string {
    return join(this.dir, 'undo', fileName);
  }
  get stagingDir(): string {
    return join(this.dir, 'staging');
  }
  get redo(): string {
    return join(this.dir, 'staging', 'redo.log');
  }
  get intent(): string {
    return join(this.dir, 'staging', 'intent.meta');
  }
  /** Present while the store is being seeded from existing images (reverse replication). */
  get seed(): string {
    return join(this.dir, 'seed.meta');
  }
  /** Present while a view is being promoted to plain disks (failover commit). */
  get promote(): string {
    return join(this.dir, 'promote.meta');
  }
  get viewsDir(): string {
    return join(this.dir, 'views');
  }
  viewDir(viewId: string): string {
    return join(this.dir, 'views', viewId);
  }
}
