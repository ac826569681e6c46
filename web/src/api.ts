// The HTTP API (docs/api.md, openapi.yaml). The browser signs in through the token link's cookie.
export interface Box { x: number; y: number; width: number; height: number }
export interface Consent { givenBy: string; basis: "self" | "permission"; grantedAt: string; statement?: string }
export interface Photo { url: string; previewUrl: string; width?: number; height?: number; faceBox: Box; faces?: number; warnings: string[] }
export interface Avatar {
  id: string; name: string; age?: number; interests: string[]; manner: string; languages: string[]; childSafe: boolean;
  backstory: string; voice: string; consent?: Consent; photo?: Photo; createdAt: string; updatedAt: string;
}
export interface AvatarInput {
  // `age: null` asks the server to forget the age (PATCH: a field not sent is left as it is).
  name: string; age?: number | null; interests?: string[]; manner?: string; languages?: string[]; childSafe?: boolean;
  backstory?: string; voice?: string; consent?: Consent;
}
export interface PhotoResult extends Photo { avatarId: string; format: string; width: number; height: number; faces: number }
export interface Sample {
  id: string; seconds: number; originalName?: string; verdict: "accepted" | "converted" | "rejected";
  problems: { code: string; message: string }[]; conversions: string[]; notes: string[];
}
export interface VoiceProfile { label: string; method: string; baseSimilarity: number; matchSimilarity: number }
export interface VoiceUpload { sample: Sample; samples: number; profile?: VoiceProfile; profileStatus?: string }

export interface Component { name: string; state: string; reason?: string; details?: Record<string, string> }
export interface Readiness { status: string; components: Component[] }

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, readonly detail: string, readonly fix: string, readonly requestId?: string, readonly field?: string) {
    super(detail);
  }
  /** The message a person reads: what happened, and what to do. */
  get text(): string {
    return this.fix && !this.detail.includes(this.fix) ? `${this.detail}. ${capitalize(this.fix)}.` : this.detail;
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

async function request<T>(method: string, path: string, body?: BodyInit | object, headers: Record<string, string> = {}, accept: number[] = []): Promise<T> {
  let payload: BodyInit | undefined;
  if (body instanceof Blob || body instanceof ArrayBuffer || body instanceof FormData) payload = body;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  let response: Response;
  try {
    response = await fetch(path, { method, body: payload, headers, credentials: "same-origin", cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "network", "The server is not answering", "check that `avatar serve` is running, then try again");
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  if (!response.ok && !accept.includes(response.status)) {
    const problem = (json ?? {}) as { code?: string; detail?: string; title?: string; fix?: string; requestId?: string; field?: string };
    throw new ApiError(response.status, problem.code ?? `http-${response.status}`, problem.detail ?? problem.title ?? `HTTP ${response.status}`, problem.fix ?? "", problem.requestId, problem.field);
  }
  return json as T;
}

export const api = {
  me: () => request<{ account: unknown }>("GET", "/api/v1/me"),
  // 503 is an answer too: "not ready", with each component's state and reason.
  readiness: () => request<Readiness>("GET", "/readyz", undefined, {}, [503]),
  avatars: async () => (await request<{ avatars: Avatar[] }>("GET", "/api/v1/avatars")).avatars,
  avatar: (id: string) => request<Avatar>("GET", `/api/v1/avatars/${encodeURIComponent(id)}`),
  create: (input: AvatarInput) => request<Avatar>("POST", "/api/v1/avatars", input),
  update: (id: string, input: Partial<AvatarInput>) => request<Avatar>("PATCH", `/api/v1/avatars/${encodeURIComponent(id)}`, input),
  remove: (id: string) => request<void>("DELETE", `/api/v1/avatars/${encodeURIComponent(id)}?confirm=${encodeURIComponent(id)}`),
  photo: (id: string, file: Blob, name: string) =>
    request<PhotoResult>("PUT", `/api/v1/avatars/${encodeURIComponent(id)}/photo?filename=${encodeURIComponent(name)}`, file, { "Content-Type": "application/octet-stream" }),
  voiceSample: (id: string, file: Blob, name: string) =>
    request<VoiceUpload>("POST", `/api/v1/avatars/${encodeURIComponent(id)}/voice/samples?filename=${encodeURIComponent(name)}`, file, { "Content-Type": "application/octet-stream" }),
  voice: (id: string) => request<{ samples: Sample[]; profile?: VoiceProfile }>("GET", `/api/v1/avatars/${encodeURIComponent(id)}/voice`),
};
