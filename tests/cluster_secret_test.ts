/** The cluster secret file: its bytes minus trailing line breaks, 16 to 4096 of them, never echoed. */
import assert from "node:assert/strict";
import { MAX_SECRET_BYTES, readClusterSecret } from "../src/cluster/clusterSecret.ts";

const text = new TextDecoder();

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the key is the file's bytes without trailing line breaks", async () => {
  await withDir(async (dir) => {
    const secret = "c2VjcmV0IG9mIHRoZSBjbHVzdGVyCg==";
    for (const ending of ["", "\n", "\r\n", "\n\n"]) {
      const path = `${dir}/s`;
      await Deno.writeTextFile(path, secret + ending, { mode: 0o600 });
      await Deno.chmod(path, 0o600);
      const read = await readClusterSecret(path);
      assert.ok(!("error" in read), JSON.stringify(read));
      assert.equal(text.decode(read.key), secret);
      assert.equal(read.warning, null);
    }
    // Spaces are part of the secret; only line breaks at the end go.
    await Deno.writeTextFile(`${dir}/s`, " sixteen bytes!! \n");
    const read = await readClusterSecret(`${dir}/s`);
    assert.ok(!("error" in read));
    assert.equal(text.decode(read.key), " sixteen bytes!! ");
  });
});

Deno.test("a short, missing, oversized or non-file secret is one line that never shows the secret", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/short`, "fifteen bytes!!\n");
    const short = await readClusterSecret(`${dir}/short`);
    assert.ok("error" in short);
    assert.equal(
      short.error,
      `--cluster-secret-file ${dir}/short: the secret must be at least 16 bytes (it has 15); ` +
        "make one with: head -c 32 /dev/urandom | base64 > FILE",
    );
    assert.ok(!short.error.includes("fifteen"));

    const missing = await readClusterSecret(`${dir}/nope`);
    assert.deepEqual(missing, { error: `--cluster-secret-file ${dir}/nope: file not found` });

    await Deno.writeFile(`${dir}/long`, new Uint8Array(MAX_SECRET_BYTES + 1).fill(0x61));
    assert.deepEqual(await readClusterSecret(`${dir}/long`), {
      error: `--cluster-secret-file ${dir}/long: longer than 4096 bytes`,
    });
    await Deno.writeFile(`${dir}/max`, new Uint8Array(MAX_SECRET_BYTES).fill(0x61));
    const max = await readClusterSecret(`${dir}/max`);
    assert.ok(!("error" in max) && max.key.length === MAX_SECRET_BYTES);

    assert.deepEqual(await readClusterSecret(dir), {
      error: `--cluster-secret-file ${dir}: not a regular file`,
    });
  });
});

Deno.test({
  name: "a device is refused without reading it (a wrong path cannot fill memory)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    assert.deepEqual(await readClusterSecret("/dev/zero"), {
      error: "--cluster-secret-file /dev/zero: not a regular file",
    });
  },
});

Deno.test({
  name: "a secret file group or others may access is used, with one warning line",
  ignore: Deno.build.os === "windows",
  async fn() {
    await withDir(async (dir) => {
      const path = `${dir}/s`;
      await Deno.writeTextFile(path, "a secret of sixteen or more bytes\n");
      for (const [mode, warned] of [[0o600, false], [0o400, false], [0o640, true], [0o604, true]]) {
        await Deno.chmod(path, mode as number);
        const read = await readClusterSecret(path);
        assert.ok(!("error" in read));
        if (!warned) {
          assert.equal(read.warning, null);
          continue;
        }
        const octal = (mode as number).toString(8).padStart(4, "0");
        assert.equal(
          read.warning,
          `cluster: secret file ${path} is accessible to group or others (mode ${octal}); ` +
            "chmod 600 it",
        );
        assert.ok(!read.warning!.includes("sixteen"));
      }
    });
  },
});
