// Cold cache: the same read mix as reads.js, started right after the app's cache keys were
// flushed (scripts/loadtest.py deletes momentum:v1:* first; nothing else in Redis). Requests
// in the first WARM_SECONDS are tagged phase:warming, the rest phase:warm.
//   redis-cli --scan --pattern 'momentum:v1:*' | xargs -r redis-cli del   # what the runner does
//   k6 run -e BASE_URL=http://127.0.0.1:8000 -e RATE=400 -e DURATION=30s loadtests/cold_start.js
import exec from 'k6/execution';
import { TREND_STATS, DURATION, groupThresholds } from './lib/common.js';
import { readOnce } from './lib/read_mix.js';

const RATE = parseInt(__ENV.RATE || '400', 10);
const WARM_MS = 1000 * parseFloat(__ENV.WARM_SECONDS || '5');

export const options = {
  discardResponseBodies: true,
  scenarios: {
    cold_start: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: parseInt(__ENV.VUS || '50', 10),
      maxVUs: parseInt(__ENV.MAX_VUS || '300', 10),
      gracefulStop: '5s',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    ...groupThresholds(['api_read', 'page', 'fragment']),
    // Reported, not judged: how the first seconds after the flush compare with the rest.
    'http_req_duration{phase:warming}': ['max>=0'],
    'http_req_duration{phase:warm}': ['max>=0'],
  },
};

// No setup(): any request before the scenario would warm the cache.
export default function () {
  const phase = exec.instance.currentTestRunDuration < WARM_MS ? 'warming' : 'warm';
  readOnce({ phase });
}
