/**
 * Time, injected. Domain code never reads the clock itself; runners pass a Clock in so tests can
 * control time. `monotonicMs` orders events and measures durations; `wallMs` is only for display
 * and for timestamps shown to people.
 */
export interface Clock {
  wallMs(): number;
  monotonicMs(): number;
}
