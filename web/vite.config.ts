/// <reference types="vitest/config" />
// Build to web/dist, which the server serves (hashed files under /assets get long-cache
// headers). `npm run dev` proxies the API and the event socket to a server on :3000.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const api = process.env.OPENHANDS_URL ?? "http://127.0.0.1:3000";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: {
    proxy: {
      "/api": { target: api, ws: true, changeOrigin: false },
      "/oauth": { target: api },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
