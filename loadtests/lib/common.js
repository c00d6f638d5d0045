// Shared by the open-model load scenarios: base URL, tags, thresholds, token logins.
import http from 'k6/http';

export const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8000';
export const DURATION = __ENV.DURATION || '30s';
export const CHALLENGES = parseInt(__ENV.CHALLENGES || '500', 10);
export const USERS = parseInt(__ENV.USERS || '10000', 10);
// Hot set: most traffic reads a few popular challenges and members (that is what a cache is for).
export const HOT_CHALLENGES = parseInt(__ENV.HOT_CHALLENGES || '100', 10);
export const HOT_USERS = parseInt(__ENV.HOT_USERS || '300', 10);

export const TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];

export const pick = (n) => 1 + Math.floor(Math.random() * n);
export const choice = (items) => items[Math.floor(Math.random() * items.length)];

// Every request carries `group` (api_read, page, fragment, api_write, coach, coach_stream) and `kind`
// (read, write, coach), plus a `name` without ids so URLs do not explode the metrics.
export function params(group, name, extra = {}) {
  const kind = group === 'api_write' ? 'write' : group.startsWith('coach') ? 'coach' : 'read';
  return { ...extra, tags: { group, kind, name, ...(extra.tags || {}) } };
}

// The product bar, per endpoint group: p95 under 300 ms, under 0.1% failures.
export function groupThresholds(groups) {
  const t = {};
  for (const g of groups) {
    t[`http_req_duration{group:${g}}`] = ['p(95)<300'];
    t[`http_req_failed{group:${g}}`] = ['rate<0.001'];
  }
  return t;
}

// Also expose the aggregate per kind so the report can judge "reads" and "writes" as wholes.
export function kindMetrics(kinds) {
  const t = {};
  for (const k of kinds) {
    t[`http_req_duration{kind:${k}}`] = ['p(95)<300'];
    t[`http_req_failed{kind:${k}}`] = ['rate<0.001'];
  }
  return t;
}

// Bearer tokens the runner fetched once (TOKENS_FILE, a JSON list), read in the init context.
const TOKEN_FILE = __ENV.TOKENS_FILE ? JSON.parse(open(__ENV.TOKENS_FILE)) : null;

// Bearer tokens of the seeded load accounts (load-0001..load-1000 / momentum-load).
// Bounded: TOKENS logins, sequential, in setup(); the load stack raises LOGIN_RATE_LIMIT.
// Logins hash passwords (argon2) and are slow, so scripts/loadtest.py passes TOKENS_FILE.
export function login(count, first = 1) {
  if (TOKEN_FILE) return TOKEN_FILE.slice(0, count);
  const tokens = [];
  for (let i = 0; i < count; i++) {
    const n = String(first + i).padStart(4, '0');
    const res = http.post(
      `${BASE}/api/v1/auth/token`,
      JSON.stringify({ email: `load-${n}@momentum.local`, password: 'momentum-load' }),
      { headers: { 'Content-Type': 'application/json' }, responseType: 'text', tags: { group: 'setup', name: 'login' } },
    );
    if (res.status !== 200) {
      throw new Error(`login load-${n}: HTTP ${res.status} ${String(res.body).slice(0, 200)}`);
    }
    tokens.push(res.json('token'));
  }
  return tokens;
}

export const bearer = (token) => ({ Authorization: `Bearer ${token}` });
