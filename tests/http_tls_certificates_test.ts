/**
 * The `--https` certificate files as otter reads them (src/servers/http/tlsCertificates.ts): each
 * kind of mistake is one line naming the file at fault, and the leaf's serial and notAfter read
 * from its DER agree with openssl's, for UTCTime and GeneralizedTime dates and a serial with its
 * high bit set; damaged DER never throws.
 */
import assert from "node:assert/strict";
import { leafFacts, readCertificate } from "../src/servers/http/tlsCertificates.ts";
import { makeCa, makeLeaf } from "./support/testCertificates.ts";

const dir = await Deno.makeTempDir({ prefix: "otter-tls-files-" });
const ca = await makeCa(dir, "files");
// notAfter in 2050 or later is a GeneralizedTime (RFC 5280 4.1.2.5); before, a UTCTime.
const near = await makeLeaf(dir, ca, "near", { serialHex: "8f" + "01".repeat(15) });
const far = await makeLeaf(dir, ca, "far", { days: 365 * 30 });

function der(pem: string): Uint8Array {
  const body = pem.slice(pem.indexOf("-----BEGIN CERTIFICATE-----") + 27, pem.indexOf("-----END"));
  return Uint8Array.from(atob(body.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
}

Deno.test({
  name: "tls certificates: serial and notAfter agree with openssl",
  fn() {
    for (const leaf of [near, far]) {
      const read = readCertificate(leaf.certPath, leaf.keyPath);
      assert.ok(!("error" in read), JSON.stringify(read));
      assert.equal(read.serial, leaf.serial);
      assert.equal(read.notAfterMs / 1000, leaf.notAfterSeconds);
    }
    assert.ok(far.notAfterSeconds > Date.UTC(2050, 0, 1) / 1000, "far ends after 2049");
    assert.match(near.serial, /^8F/, "a serial with its high bit set (a leading 00 in DER)");
  },
});

Deno.test("tls certificates: each bad file is one line naming it", () => {
  const error = (cert: string, key: string) => {
    const read = readCertificate(cert, key);
    assert.ok("error" in read, `${cert} ${key} was taken`);
    assert.ok(!read.error.includes("\n"));
    return read.error;
  };
  assert.equal(
    error(`${dir}/none.pem`, near.keyPath),
    `--tls-cert ${dir}/none.pem: file not found`,
  );
  assert.equal(
    error(near.certPath, `${dir}/none.key`),
    `--tls-key ${dir}/none.key: file not found`,
  );
  assert.equal(error(dir, near.keyPath), `--tls-cert ${dir}: is a directory`);
  assert.match(
    error(near.keyPath, near.keyPath),
    /^--tls-cert .*near\.key: no PEM certificate in it .*is it the --tls-key file\?$/,
  );
  assert.match(
    error(near.certPath, near.certPath),
    /^--tls-key .*near\.pem: no PEM private key in it .*is it the --tls-cert file\?$/,
  );
  const encrypted = `${dir}/encrypted.key`;
  Deno.writeTextFileSync(
    encrypted,
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
  );
  assert.match(
    error(near.certPath, encrypted),
    /^--tls-key .*encrypted\.key: the key is encrypted/,
  );
});

Deno.test("tls certificates: damaged DER gives no facts, never an exception", () => {
  const good = der(Deno.readTextFileSync(near.certPath));
  assert.equal(leafFacts(good)?.serial, near.serial);
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 20_000; i++) {
    const bytes = good.slice(0, 1 + Math.floor(random() * good.length));
    for (let j = 0; j < 1 + Math.floor(random() * 4); j++) {
      bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    }
    const facts = leafFacts(bytes);
    if (facts !== null) assert.equal(typeof facts.serial, "string");
  }
  assert.equal(leafFacts(new Uint8Array(0)), null);
  assert.equal(leafFacts(new Uint8Array([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])), null);
});

Deno.test("tls certificates: cleanup", async () => {
  await Deno.remove(dir, { recursive: true });
});
