/**
 * Bounded binary readers and writers for replication frame payloads. The reader never trusts a length:
 * every read is checked against the bytes present, strings against a small cap, 64-bit integers
 * against 2^53 - 1, and `end()` refuses trailing bytes. Violations throw SECONDSITE_ERR_BAD_FRAME.
 */
import { Buffer } from 'node:buffer';
import { SecondsiteError } from '../../domain/errors.js';

/** Longest string field (host ids, relationship ids, cycle ids, storage location names, messages). */
export const MAX_STRING_BYTES = 256;
/** Longest error message carried in an ERROR frame. */
export const MAX_MESSAGE_BYTES = 4096;

function bad(message: string, details: Record<string, unknown> = {}): SecondsiteError {
  return new SecondsiteError('SECONDSITE_ERR_BAD_FRAME', message, details);
}

export class PayloadReader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, field: string): void {
    if (n > this.remaining) {
      throw bad(`${this.what}: field '${field}' needs ${n} bytes but only ${this.remaining} remain`, {
        field,
      });
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf.readUInt8(this.pos++);
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** An unsigned 64-bit integer that must fit a JS number exactly. */
  u64(field: string): number {
    this.need(8, field);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw bad(`${this.what}: field '${field}' = ${v} is beyond 2^53-1`, { field });
    }
    return Number(v);
  }

  /** Fixed-size bytes (copied, so the frame buffer can be released). */
  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /** A u16-length-prefixed UTF-8 string of at most `maxBytes`, without NUL or invalid UTF-8. */
  str(field: string, maxBytes = MAX_STRING_BYTES): string {
    const len = this.u16(field);
    if (len > maxBytes)
      throw bad(`${this.what}: field '${field}' is ${len} bytes, cap ${maxBytes}`, { field });
    this.need(len, field);
    const raw = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    const text = raw.toString('utf8');
    if (!Buffer.from(text, 'utf8').equals(raw) || text.includes('\0')) {
      throw bad(`${this.what}: field '${field}' is not valid UTF-8 text`, { field });
    }
    return text;
  }

  /** The rest of the payload, without a copy. */
  rest(): Buffer {
    const out = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return out;
  }

  /** Refuses trailing bytes. */
  end(): void {
    if (this.remaining !== 0) throw bad(`${this.what}: ${this.remaining} unexpected trailing bytes`);
  }
}

export class PayloadWriter {
  private readonly parts: Buffer[] = [];

  u8(v: number): this {
    const b = Buffer.allocUnsafe(1);
    b.writeUInt8(v);
    this.parts.push(b);
    return this;
  }

  u16(v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
    return this;
  }

  u32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
    return this;
  }

  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new RangeError(`u64 field must be a safe non-negative integer: ${v}`);
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64BE(BigInt(v));
    this.parts.push(b);
    return this;
  }

  bytes(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  str(text: string, maxBytes = MAX_STRING_BYTES): this {
    const b = Buffer.from(text, 'utf8');
    if (b.length > maxBytes) throw new RangeError(`string field longer than ${maxBytes} bytes`);
    this.u16(b.length);
    this.parts.push(b);
    return this;
  }

  /** The payload as parts (large bodies are not copied). */
  finish(): Buffer[] {
    return this.parts;
  }
}
