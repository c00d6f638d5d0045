// Coach chat, open model at a tiny rate (the local model is CPU-heavy): POST a message, then
// read its SSE stream to the end. Reported apart from the API target.
// k6 1.1 buffers a response until it ends, so the stream's first token cannot be timed here:
// coach_stream_open_ms is the time to the stream's headers, coach_stream_ms the whole answer;
// the runner adds time to first token from the server's momentum_llm_ttft_seconds histogram.
//   k6 run -e BASE_URL=http://127.0.0.1:8000 -e EVERY=5s -e DURATION=60s loadtests/coach.js
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { BASE, DURATION, TREND_STATS, bearer, choice, login, params } from './lib/common.js';

const postMs = new Trend('coach_post_ms', true);
const openMs = new Trend('coach_stream_open_ms', true);
const streamMs = new Trend('coach_stream_ms', true);
const tokensPerAnswer = new Trend('coach_tokens');
const answered = new Rate('coach_answered');
const streamErrors = new Counter('coach_stream_errors');

const PROMPTS = [
  'I keep missing my morning run. Any tips?',
  'How do I keep a reading streak going on busy days?',
  'I broke my meditation streak yesterday, how do I restart?',
  'Give me one small step to drink more water today.',
];

export const options = {
  setupTimeout: '60s',
  scenarios: {
    coach: {
      executor: 'constant-arrival-rate',
      rate: 1,
      timeUnit: __ENV.EVERY || '5s',
      duration: DURATION,
      preAllocatedVUs: 2,
      maxVUs: parseInt(__ENV.MAX_VUS || '6', 10),
      gracefulStop: '30s',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    'http_req_duration{group:coach}': ['p(95)<300'], // the POST: an API call like any other
    'http_req_failed{group:coach}': ['rate<0.001'],
    'http_req_duration{group:coach_stream}': ['max>=0'], // the whole answer: reported only
    'http_req_failed{group:coach_stream}': ['rate<0.001'],
    coach_answered: ['rate>0.99'],
    coach_stream_open_ms: ['p(95)<300'],
    coach_post_ms: ['p(95)<300'],
  },
};

export function setup() {
  return { tokens: login(parseInt(__ENV.TOKENS || '5', 10), parseInt(__ENV.FIRST_ACCOUNT || '901', 10)) };
}

export default function (data) {
  const headers = { ...bearer(choice(data.tokens)), 'Content-Type': 'application/json' };
  const posted = http.post(`${BASE}/api/v1/coach/messages`, JSON.stringify({ text: choice(PROMPTS) }),
    params('coach', '/api/v1/coach/messages', { headers }));
  postMs.add(posted.timings.duration);
  if (!check(posted, { 'posted 2xx': (r) => r.status === 200 || r.status === 201 })) {
    answered.add(false);
    return;
  }
  const stream = http.get(`${BASE}${posted.json('stream_url')}`, params('coach_stream', '/api/v1/coach/messages/{id}/stream', {
    headers: { Authorization: headers.Authorization, Accept: 'text/event-stream' },
    timeout: '120s',
  }));
  openMs.add(stream.timings.waiting);
  streamMs.add(stream.timings.duration);
  const body = String(stream.body || '');
  const tokens = (body.match(/^event: token/gm) || []).length;
  const done = /^event: done/m.test(body);
  if (/^event: error/m.test(body)) streamErrors.add(1);
  tokensPerAnswer.add(tokens);
  answered.add(stream.status === 200 && done);
  check(stream, { 'stream done': () => done });
}
