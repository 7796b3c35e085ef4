// Numbers, durations and sizes as people read them.

export function complexText(re, im, digits = 6) {
  const sign = im < 0 || Object.is(im, -0) ? "−" : "+";
  return `${trim(re, digits)} ${sign} ${trim(Math.abs(im), digits)}i`;
}

export function trim(value, digits = 6) {
  const text = Number(value).toFixed(digits);
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

export function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 1) return "< 1 s";
  if (value < 90) return `${Math.round(value)} s`;
  const minutes = Math.floor(value / 60);
  return `${minutes} min ${Math.round(value - minutes * 60)} s`;
}

export function bytes(value) {
  if (!value) return "";
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(0)} KB`;
  return `${(value / 1024 / 1024).toFixed(1)} MB`;
}

export function ago(iso) {
  const elapsed = (Date.now() - new Date(iso).getTime()) / 1000;
  if (elapsed < 60) return "just now";
  if (elapsed < 3600) return `${Math.floor(elapsed / 60)} min ago`;
  if (elapsed < 86400) return `${Math.floor(elapsed / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}
