// The anonymous read mix shared by reads.js and cold_start.js: JSON API reads, page shells
// and the HTMX fragments those shells declare (hx-get), over a hot set of ids.
import http from 'k6/http';
import { check } from 'k6';
import { BASE, HOT_CHALLENGES, HOT_USERS, choice, params, pick } from './common.js';

// Share of each group (a page view is one shell plus ~2 fragments, and API clients poll).
export const MIX = { api_read: 0.6, page: 0.1, fragment: 0.3 };

export const API = [
  () => [`/api/v1/challenges?page=${pick(5)}`, '/api/v1/challenges'],
  () => ['/api/v1/challenges?category=fitness', '/api/v1/challenges'],
  () => [`/api/v1/challenges/${pick(HOT_CHALLENGES)}`, '/api/v1/challenges/{id}'],
  () => [`/api/v1/challenges/${pick(HOT_CHALLENGES)}/check-ins`, '/api/v1/challenges/{id}/check-ins'],
  () => ['/api/v1/leaderboard?limit=10', '/api/v1/leaderboard'],
  () => [`/api/v1/users/${pick(HOT_USERS)}/reputation`, '/api/v1/users/{id}/reputation'],
];

export const PAGES = [
  () => ['/', '/'],
  () => ['/challenges', '/challenges'],
  () => [`/challenges/${pick(HOT_CHALLENGES)}`, '/challenges/{id}'],
  () => ['/leaderboard', '/leaderboard'],
  () => [`/users/${pick(HOT_USERS)}`, '/users/{id}'],
];

export const FRAGMENTS = [
  () => ['/fragments/trending', '/fragments/trending'],
  () => ['/fragments/leaderboard?limit=5', '/fragments/leaderboard'],
  () => ['/fragments/leaderboard?limit=50', '/fragments/leaderboard'],
  () => ['/fragments/challenges', '/fragments/challenges'],
  () => [`/fragments/challenges?page=${pick(5)}`, '/fragments/challenges'],
  () => [`/fragments/challenges/${pick(HOT_CHALLENGES)}/participants`, '/fragments/challenges/{id}/participants'],
  () => [`/fragments/challenges/${pick(HOT_CHALLENGES)}/check-ins`, '/fragments/challenges/{id}/check-ins'],
];

const KNOWN = new Set(FRAGMENTS.map((f) => f()[1]));

// Parse each page shell once: warn about any fragment it declares that the mix lacks.
export function checkDeclaredFragments() {
  const missing = [];
  for (const path of ['/', '/challenges', '/challenges/1', '/leaderboard', '/users/1']) {
    const res = http.get(`${BASE}${path}`, { responseType: 'text', tags: { group: 'setup', name: 'setup' } });
    if (res.status !== 200) throw new Error(`setup: ${path} answered ${res.status}`);
    for (const m of String(res.body).matchAll(/hx-get="(\/fragments\/[^"?]*)/g)) {
      if (!KNOWN.has(m[1].replace(/\/\d+/g, '/{id}'))) missing.push(`${path} declares ${m[1]}`);
    }
  }
  if (missing.length) console.warn(`fragments not in the mix: ${missing.join('; ')}`);
  return missing;
}

export function hit(group, [path, name], tags = {}) {
  const headers = group === 'fragment' ? { 'HX-Request': 'true' } : {};
  const res = http.get(`${BASE}${path}`, params(group, name, { headers, tags }));
  check(res, { 'status 200': (r) => r.status === 200 });
  return res;
}

export function readOnce(tags = {}) {
  const r = Math.random();
  if (r < MIX.api_read) return hit('api_read', choice(API)(), tags);
  if (r < MIX.api_read + MIX.page) return hit('page', choice(PAGES)(), tags);
  return hit('fragment', choice(FRAGMENTS)(), tags);
}
