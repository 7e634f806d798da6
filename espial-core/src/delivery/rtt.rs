//! Round-trip time estimation and retransmission timeout (RFC 6298 / RFC 9002 style).

use super::DeliveryConfig;
use std::time::Duration;

/// Smoothed RTT and variance of one peer. Only unambiguous samples are fed (Karn: never from
/// a retransmitted fragment).
#[derive(Debug, Clone)]
pub(crate) struct Rtt {
    srtt: Duration,
    rttvar: Duration,
    min: Option<Duration>,
    latest: Duration,
    sampled: bool,
}

impl Rtt {
    pub(crate) fn new(initial: Duration) -> Self {
        Rtt {
            srtt: initial,
            rttvar: initial / 2,
            min: None,
            latest: initial,
            sampled: false,
        }
    }

    /// Feeds one sample; `ack_delay` (as reported by the receiver, already capped) is
    /// subtracted when that keeps the sample above the minimum seen.
    pub(crate) fn sample(&mut self, rtt: Duration, ack_delay: Duration) {
        let min = *self.min.get_or_insert(rtt);
        if rtt < min {
            self.min = Some(rtt);
        }
        let min = self.min.unwrap_or(rtt);
        let adjusted = if rtt >= min + ack_delay {
            rtt - ack_delay
        } else {
            rtt
        };
        self.latest = adjusted;
        if !self.sampled {
            self.sampled = true;
            self.srtt = adjusted;
            self.rttvar = adjusted / 2;
            return;
        }
        let diff = self.srtt.abs_diff(adjusted);
        self.rttvar = (self.rttvar * 3 + diff) / 4;
        self.srtt = (self.srtt * 7 + adjusted) / 8;
    }

    /// Smoothed RTT.
    pub(crate) fn srtt(&self) -> Duration {
        self.srtt
    }

    /// Most recent sample (ack delay removed).
    pub(crate) fn latest(&self) -> Duration {
        self.latest
    }

    /// Smallest sample seen (the initial RTT before any).
    pub(crate) fn min_rtt(&self) -> Duration {
        self.min.unwrap_or(self.srtt)
    }

    /// Retransmission timeout after `backoff` consecutive expiries.
    pub(crate) fn rto(&self, cfg: &DeliveryConfig, backoff: u32) -> Duration {
        let base = self.srtt + (self.rttvar * 4).max(Duration::from_millis(1)) + cfg.ack_delay;
        let base = base.clamp(cfg.min_rto, cfg.max_rto);
        base.saturating_mul(1u32 << backoff.min(16))
            .min(cfg.max_rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_and_backs_off() {
        let cfg = DeliveryConfig::default();
        let mut r = Rtt::new(cfg.initial_rtt);
        for _ in 0..50 {
            r.sample(Duration::from_millis(10), Duration::ZERO);
        }
        assert!(r.srtt() >= Duration::from_millis(9) && r.srtt() <= Duration::from_millis(11));
        let rto = r.rto(&cfg, 0);
        assert!(
            rto >= cfg.min_rto && rto < Duration::from_millis(40),
            "{rto:?}"
        );
        assert!(r.rto(&cfg, 1) > rto);
        assert_eq!(r.rto(&cfg, 40), cfg.max_rto);
    }
}
