// `npm run dev` sets NEXT_DIST_DIR=.next-dev so a dev run never overwrites the production build in .next
// (the sandbox's "dev-mode" must leave .next/BUILD_ID alone so healing back to production is instant).
/** @type {import('next').NextConfig} */
module.exports = {
  distDir: process.env.NEXT_DIST_DIR || '.next',
  // install.sh's second build (WSCHECK_STANDALONE=1) is a traced standalone one, for the sandbox's "static-missing"
  // mode; the usual build, and this file as the bot reads it, declare no standalone output.
  output: process.env.WSCHECK_STANDALONE === '1' ? 'standalone' : undefined,
  reactStrictMode: true,
  poweredByHeader: false,
  // No ESLint in this tiny app; without this `next build` prints a warning about it on every build.
  eslint: { ignoreDuringBuilds: true },
};
