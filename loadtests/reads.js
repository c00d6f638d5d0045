// Hot reads, open model: JSON API reads, page shells and the fragments those pages declare,
// at a constant arrival rate (RATE requests/s) whatever the latency.
//   k6 run -e BASE_URL=http://127.0.0.1:8000 -e RATE=400 -e DURATION=60s loadtests/reads.js
import { TREND_STATS, DURATION, groupThresholds, kindMetrics } from './lib/common.js';
import { checkDeclaredFragments, readOnce } from './lib/read_mix.js';

const RATE = parseInt(__ENV.RATE || '400', 10);

export const options = {
  discardResponseBodies: true,
  scenarios: {
    reads: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: parseInt(__ENV.VUS || '50', 10),
      maxVUs: parseInt(__ENV.MAX_VUS || '200', 10),
      gracefulStop: '5s',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: { ...groupThresholds(['api_read', 'page', 'fragment']), ...kindMetrics(['read']) },
};

export function setup() {
  checkDeclaredFragments();
}

export default function () {
  readOnce();
}
