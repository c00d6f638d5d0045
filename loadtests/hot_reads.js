// Hot reads: the API reads and page fragments that make up most traffic.
// Used by `make bench-cache` (closed model, max throughput) and the load suite.
import http from 'k6/http';
import { check } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const CHALLENGES = parseInt(__ENV.CHALLENGES || '50', 10);
const USERS = parseInt(__ENV.USERS || '200', 10);

export const options = {
  scenarios: {
    hot_reads: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || '16', 10),
      duration: __ENV.DURATION || '10s',
    },
  },
  discardResponseBodies: true, // only the status is checked: keep the client's CPU for the server
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
  thresholds: { http_req_failed: ['rate<0.001'] },
};

const pick = (n) => 1 + Math.floor(Math.random() * n);

const READS = [
  () => `/api/v1/challenges?page=${pick(5)}`,
  () => `/api/v1/challenges/${pick(CHALLENGES)}`,
  () => `/api/v1/leaderboard?limit=10`,
  () => `/api/v1/users/${pick(USERS)}/reputation`,
  () => `/api/v1/challenges/${pick(CHALLENGES)}/check-ins`,
];

// PATHS=/healthz,... replaces the mix (bench-cache uses it to measure the framework's ceiling).
const FIXED = (__ENV.PATHS || '').split(',').filter(Boolean);

export default function () {
  const path = FIXED.length
    ? FIXED[Math.floor(Math.random() * FIXED.length)]
    : READS[Math.floor(Math.random() * READS.length)]();
  const res = http.get(`${BASE}${path}`, { tags: { name: path.split('?')[0].replace(/\d+/g, '{id}') } });
  check(res, { 'status 200': (r) => r.status === 200 });
}
