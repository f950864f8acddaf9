/**
 * Throwaway certificates for TLS tests, made with the `openssl` command: a CA, and leaf
 * certificates it signs for IP:127.0.0.1 and IP:::1 (Deno's TLS refuses a self-signed certificate
 * used as the server's own: CaUsedAsEndEntity). Each CA gets its own name and key, so a client
 * trusting one CA tells which certificate a server presents. EC P-256 keys: quick to make.
 *
 * ```ts
 * const dir = await Deno.makeTempDir();
 * const ca = await makeCa(dir, "a");
 * const leaf = await makeLeaf(dir, ca, "a1");
 * // --tls-cert leaf.certPath --tls-key leaf.keyPath; clients trust [ca.pem]
 * ```
 */

export interface TestCa {
  name: string;
  certPath: string;
  keyPath: string;
  /** The CA certificate, PEM, for `caCerts`. */
  pem: string;
}

export interface TestLeaf {
  certPath: string;
  keyPath: string;
  /** The serial number as openssl prints it (upper-case hex). */
  serial: string;
  /** notAfter as openssl reads it, in seconds since the Unix epoch. */
  notAfterSeconds: number;
}

async function openssl(args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

export async function makeCa(dir: string, name: string): Promise<TestCa> {
  const certPath = `${dir}/${name}-ca.pem`;
  const keyPath = `${dir}/${name}-ca.key`;
  await openssl(
    [
      "req",
      "-x509",
      ...EC,
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "2",
      "-subj",
      `/CN=otter test CA ${name}`,
    ],
    dir,
  );
  return { name, certPath, keyPath, pem: await Deno.readTextFile(certPath) };
}

/** A leaf for 127.0.0.1 and ::1 signed by `ca`, its chain file holding the leaf then the CA;
 * a random serial and 2 days unless told. */
export async function makeLeaf(
  dir: string,
  ca: TestCa,
  name: string,
  options: { serialHex?: string; days?: number } = {},
): Promise<TestLeaf> {
  const keyPath = `${dir}/${name}.key`;
  const csr = `${dir}/${name}.csr`;
  const leafPath = `${dir}/${name}-leaf.pem`;
  const certPath = `${dir}/${name}.pem`;
  const ext = `${dir}/${name}.ext`;
  await Deno.writeTextFile(
    ext,
    "subjectAltName=IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  await openssl(["req", ...EC, "-keyout", keyPath, "-out", csr, "-subj", "/CN=127.0.0.1"], dir);
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.certPath,
      "-CAkey",
      ca.keyPath,
      "-set_serial",
      `0x${options.serialHex ?? randomSerial()}`,
      "-out",
      leafPath,
      "-days",
      String(options.days ?? 2),
      "-extfile",
      ext,
    ],
    dir,
  );
  // As certbot's fullchain.pem: the leaf, then the chain.
  await Deno.writeTextFile(certPath, (await Deno.readTextFile(leafPath)) + ca.pem);
  const serial = (await openssl(["x509", "-in", leafPath, "-noout", "-serial"], dir)).trim()
    .replace(/^serial=/, "");
  // "notAfter=Dec  8 02:46:21 2026 GMT"
  const enddate = (await openssl(["x509", "-in", leafPath, "-noout", "-enddate"], dir)).trim();
  const notAfterSeconds = Date.parse(enddate.replace(/^notAfter=/, "")) / 1000;
  if (!Number.isInteger(notAfterSeconds)) throw new Error(`cannot read ${enddate}`);
  return { certPath, keyPath, serial, notAfterSeconds };
}

/** 16 random bytes in hex, the top bit clear (a positive INTEGER without a leading zero byte). */
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] & 0x7f) | 0x10;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
