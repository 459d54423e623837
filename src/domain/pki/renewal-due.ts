/**
 * When a certificate is renewed (docs/design/certificate-renewal.md section 1): once less than a
 * fraction of its lifetime remains (default a third: a provider's 365-day certificate about 122 days
 * before its end, a host's 825-day one about 275), which leaves months to notice a renewal that fails.
 */

export const DEFAULT_RENEW_REMAINING_FRACTION = 1 / 3;

export interface CertificateValidity {
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

/** The instant from which `validity` is due for renewal. */
export function renewalDueAtMs(
  validity: CertificateValidity,
  remainingFraction = DEFAULT_RENEW_REMAINING_FRACTION,
): number {
  if (!(remainingFraction >= 0 && remainingFraction <= 1)) {
    throw new RangeError(`the remaining fraction must be within 0..1, not ${remainingFraction}`);
  }
  const lifetimeMs = Math.max(0, validity.notAfterMs - validity.notBeforeMs);
  return validity.notAfterMs - lifetimeMs * remainingFraction;
}

/** True when `validity` is due for renewal at `nowMs` (an ended certificate is due too). */
export function renewalDue(
  validity: CertificateValidity,
  nowMs: number,
  remainingFraction = DEFAULT_RENEW_REMAINING_FRACTION,
): boolean {
  return nowMs >= renewalDueAtMs(validity, remainingFraction);
}
