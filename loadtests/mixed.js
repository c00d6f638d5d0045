// Mixed reads and writes, open model, with bearer tokens of the seeded load accounts.
//   reads:  the API reads of reads.js plus the member's own /me and /me/challenges
//   writes: join a challenge, then check in to it (a 409 - already joined / already checked
//           in today - is an expected answer, counted in write_conflicts, not a failure)
//   k6 run -e BASE_URL=http://127.0.0.1:8000 -e READ_RATE=300 -e WRITE_RATE=20 loadtests/mixed.js
import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import {
  BASE, CHALLENGES, DURATION, TREND_STATS, bearer, choice, groupThresholds, kindMetrics, login,
  params,
} from './lib/common.js';
import { API } from './lib/read_mix.js';

const READ_RATE = parseInt(__ENV.READ_RATE || '300', 10);
const WRITE_RATE = parseInt(__ENV.WRITE_RATE || '20', 10);
const TOKENS = parseInt(__ENV.TOKENS || '100', 10);
const FIRST_ACCOUNT = parseInt(__ENV.FIRST_ACCOUNT || '1', 10);
const writeConflicts = new Rate('write_conflicts');
const WRITE_OK = http.expectedStatuses(200, 201, 409);

export const options = {
  discardResponseBodies: true,
  setupTimeout: '120s',
  scenarios: {
    member_reads: {
      executor: 'constant-arrival-rate',
      exec: 'read',
      rate: READ_RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: parseInt(__ENV.VUS || '80', 10),
      maxVUs: parseInt(__ENV.MAX_VUS || '200', 10),
      gracefulStop: '5s',
    },
    writes: {
      executor: 'constant-arrival-rate',
      exec: 'write',
      rate: WRITE_RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: parseInt(__ENV.WRITE_VUS || '20', 10),
      maxVUs: parseInt(__ENV.WRITE_MAX_VUS || '100', 10),
      gracefulStop: '5s',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    ...groupThresholds(['api_read', 'api_write']),
    ...kindMetrics(['read', 'write']),
    write_conflicts: ['rate<0.5'], // mostly real writes, not cheap 409s
  },
};

export function setup() {
  return { tokens: login(TOKENS, FIRST_ACCOUNT) };
}

export function read(data) {
  const auth = { headers: bearer(choice(data.tokens)) };
  const r = Math.random();
  let res;
  if (r < 0.1) res = http.get(`${BASE}/api/v1/me`, params('api_read', '/api/v1/me', auth));
  else if (r < 0.2) res = http.get(`${BASE}/api/v1/me/challenges`, params('api_read', '/api/v1/me/challenges', auth));
  else {
    const [path, name] = choice(API)();
    res = http.get(`${BASE}${path}`, params('api_read', name, auth));
  }
  check(res, { 'status 200': (x) => x.status === 200 });
}

export function write(data) {
  // Spread (account, challenge) pairs over the run so few repeat; RUN_SEED varies per run.
  const i = exec.scenario.iterationInTest + parseInt(__ENV.RUN_SEED || '0', 10);
  const token = data.tokens[i % data.tokens.length];
  const challenge = 1 + ((Math.floor(i / data.tokens.length) * 7919 + i * 104729) % CHALLENGES);
  const opts = (name) => params('api_write', name, {
    headers: { ...bearer(token), 'Content-Type': 'application/json' },
    responseCallback: WRITE_OK,
  });
  const joined = http.post(`${BASE}/api/v1/challenges/${challenge}/join`, null,
    opts('/api/v1/challenges/{id}/join'));
  writeConflicts.add(joined.status === 409);
  const checkedIn = http.post(`${BASE}/api/v1/challenges/${challenge}/check-ins`,
    JSON.stringify({ note: 'k6 load test' }), opts('/api/v1/challenges/{id}/check-ins'));
  writeConflicts.add(checkedIn.status === 409);
  check(joined, { 'join 2xx/409': (x) => [200, 201, 409].includes(x.status) });
  check(checkedIn, { 'check-in 2xx/409': (x) => [200, 201, 409].includes(x.status) });
}
