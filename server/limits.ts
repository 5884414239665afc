/** Per-peer rate limiting: token buckets and flood detection. */

/** A token bucket: `rate` tokens a second, holding at most `burst`. */
export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #at: number;

  constructor(rate: number, burst: number, now: number) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
    this.#at = now;
  }

  /** Takes one token: 0 when granted, else the ms until one is available. */
  take(now: number): number {
    const elapsed = now - this.#at;
    if (elapsed > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + elapsed * this.#rate / 1000);
      this.#at = now;
    }
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.#tokens) * 1000 / this.#rate);
  }
}

/** Counts rejections in a sliding one-second window. */
export class FloodMeter {
  #times: number[] = [];
  #limit: number;

  /** `limit`: rejections within one second that make a flood. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Records a rejection; true when the peer is flooding. */
  reject(now: number): boolean {
    const t = this.#times;
    t.push(now);
    while (t.length > 0 && t[0] <= now - 1000) t.shift();
    return t.length > this.#limit;
  }
}

/**
 * One peer's rate limits: every command against `5 × rate`, messages also
 * against `rate`, and rejections counted for the flood close.
 */
export class PeerRate {
  #commands: TokenBucket;
  #messages: TokenBucket;
  #flood: FloodMeter;

  constructor(rate: number, burst: number, now: number) {
    this.#commands = new TokenBucket(rate * 5, burst * 5, now);
    this.#messages = new TokenBucket(rate, burst, now);
    this.#flood = new FloodMeter(rate * 10);
  }

  /** Takes a token for a command: 0 when allowed, else the ms to wait. */
  take(message: boolean, now: number): number {
    const wait = this.#commands.take(now);
    return wait > 0 || !message ? wait : this.#messages.take(now);
  }

  /** Records a rejection; true when the peer is flooding. */
  rejected(now: number): boolean {
    return this.#flood.reject(now);
  }
}
