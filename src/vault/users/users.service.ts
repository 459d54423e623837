/**
 * Users and their API tokens (docs/design/vault.md section 2). A token is `ss_<tokenId>_<secret>`;
 * the vault keeps SHA-256 of the secret, so a token is shown once, when it is made. The first start
 * of a vault on an empty database makes the user `admin` (Owner) and writes its token to a 0600 file
 * in the vault's data directory, the way a first administrator gets in.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { SecondsiteError } from '../../domain/errors.js';
import type { Principal, Role } from '../../domain/vault/rbac.js';
import type { Queryable } from '../../persistence/database.js';
import {
  formatApiToken,
  newId,
  newSecret,
  parseApiToken,
  secretMatches,
  sha256,
} from '../auth/secret-token.js';

export interface UserView {
  userId: string;
  name: string;
  role: Role;
  createdAt: string;
}

interface UserRow {
  user_id: string;
  name: string;
  role: Role;
  created_at: Date;
}

const view = (r: UserRow): UserView => ({
  userId: r.user_id,
  name: r.name,
  role: r.role,
  createdAt: r.created_at.toISOString(),
});

const DAY_MS = 24 * 3600 * 1000;

export class UsersService {
  constructor(private readonly db: Queryable) {}

  async create(name: string, role: Role): Promise<UserView> {
    const r = await this.db.query<UserRow>(
      `INSERT INTO users (user_id, name, role) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO NOTHING RETURNING user_id, name, role, created_at`,
      [newId('usr'), name, role],
    );
    if (r.rows[0]) return view(r.rows[0]);
    const existing = await this.byName(name);
    if (existing.role !== role) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `user ${name} already exists with role ${existing.role}; pick another name`,
        { name, role: existing.role },
      );
    }
    return existing; // idempotent
  }

  async list(): Promise<UserView[]> {
    const r = await this.db.query<UserRow>('SELECT user_id, name, role, created_at FROM users ORDER BY name');
    return r.rows.map(view);
  }

  async byName(name: string): Promise<UserView> {
    const r = await this.db.query<UserRow>(
      'SELECT user_id, name, role, created_at FROM users WHERE name = $1',
      [name],
    );
    if (!r.rows[0]) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no user ${name}; list them with 'secondsite vault user list'`,
        {
          name,
        },
      );
    }
    return view(r.rows[0]);
  }

  /** Makes a token for a user; the token text is returned once and never stored. */
  async createToken(
    userId: string,
    label: string,
    expiresInDays: number,
  ): Promise<{ tokenId: string; token: string; expiresAt: string }> {
    const tokenId = newId('tok');
    const secret = newSecret();
    const expiresAt = new Date(Date.now() + expiresInDays * DAY_MS);
    await this.db.query(
      'INSERT INTO api_tokens (token_id, user_id, secret_sha256, label, expires_at) VALUES ($1, $2, $3, $4, $5)',
      [tokenId, userId, sha256(secret), label, expiresAt],
    );
    return { tokenId, token: formatApiToken(tokenId, secret), expiresAt: expiresAt.toISOString() };
  }

  /** The user a bearer token belongs to; SECONDSITE_ERR_UNAUTHORIZED saying why not. */
  async authenticate(token: string): Promise<Principal> {
    const parsed = parseApiToken(token);
    const refuse = (why: string): SecondsiteError =>
      new SecondsiteError(
        'SECONDSITE_ERR_UNAUTHORIZED',
        `the API token is ${why}; make a new one with 'secondsite vault token create'`,
      );
    if (!parsed) throw refuse('malformed (expected ss_tok_<id>_<secret>)');
    const r = await this.db.query<{
      secret_sha256: Buffer;
      expires_at: Date;
      revoked_at: Date | null;
      user_id: string;
      name: string;
      role: Role;
    }>(
      `SELECT t.secret_sha256, t.expires_at, t.revoked_at, u.user_id, u.name, u.role
       FROM api_tokens t JOIN users u USING (user_id) WHERE t.token_id = $1`,
      [parsed.tokenId],
    );
    const row = r.rows[0];
    if (!row || !secretMatches(parsed.secret, row.secret_sha256)) throw refuse('not valid');
    if (row.revoked_at) throw refuse('revoked');
    if (row.expires_at.getTime() <= Date.now()) throw refuse(`expired (${row.expires_at.toISOString()})`);
    return { kind: 'user', userId: row.user_id, name: row.name, role: row.role };
  }

  /**
   * First start on an empty database: the Owner `admin` and a token in `tokenFile` (0600). Returns
   * true when this process made them (another vault process may have, at the same moment).
   */
  async bootstrapOwner(tokenFile: string): Promise<boolean> {
    const r = await this.db.query<UserRow>(
      `INSERT INTO users (user_id, name, role)
       SELECT $1, 'admin', 'Owner' WHERE NOT EXISTS (SELECT 1 FROM users)
       ON CONFLICT (name) DO NOTHING RETURNING user_id, name, role, created_at`,
      [newId('usr')],
    );
    const admin = r.rows[0];
    if (!admin) return false;
    const t = await this.createToken(admin.user_id, 'first administrator', 365);
    await writeFile(tokenFile, `${t.token}\n`, { mode: 0o600 });
    await chmod(tokenFile, 0o600); // an existing file keeps its mode through writeFile
    return true;
  }
}
