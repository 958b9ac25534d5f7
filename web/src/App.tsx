import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createBrowserRouter, RouterProvider } from "react-router";
import { ApiError } from "./api/client";
import type { AppConfig } from "./api/types";
import { gateFor, reportGate } from "./app/gate";
import { GateScreens } from "./pages/GateScreens";
import { Layout } from "./components/Layout";
import { HomePage } from "./pages/HomePage";
import { ConversationPage } from "./pages/ConversationPage";
import { SettingsPage } from "./pages/SettingsPage";
import { SecretsPage } from "./pages/SecretsPage";
import { GitProvidersPage } from "./pages/GitProvidersPage";
import { ApiKeysPage } from "./pages/ApiKeysPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { AfterTos } from "./pages/AfterTos";
import { OrganizationsPage } from "./pages/OrganizationsPage";

function onError(error: unknown) {
  const config = queryClient.getQueryData<AppConfig>(["config"]);
  reportGate(gateFor(error, config?.APP_MODE === "saas"));
}

export const queryClient = new QueryClient({
  queryCache: new QueryCache({ onError }),
  mutationCache: new MutationCache({ onError }),
  defaultOptions: {
    queries: {
      // Client errors will not change by asking again; rate limits, server and network
      // errors may.
      retry: (count, error) =>
        count < 3 &&
        !(error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429),
      retryDelay: (attempt) => Math.min(1000 * 2 ** attempt, 8000),
      refetchOnWindowFocus: false,
    },
  },
});

const router = createBrowserRouter([
  {
    element: <Layout />,
    children: [
      { path: "/", element: <HomePage /> },
      { path: "/conversations/:id", element: <ConversationPage /> },
      { path: "/settings", element: <SettingsPage /> },
      { path: "/secrets", element: <SecretsPage /> },
      { path: "/git", element: <GitProvidersPage /> },
      { path: "/api-keys", element: <ApiKeysPage /> },
      { path: "/organizations", element: <OrganizationsPage /> },
      // The login sends people here when the terms are not accepted yet; once they are,
      // the gate is passed and this goes where the login meant to go.
      { path: "/accept-tos", element: <AfterTos /> },
      { path: "*", element: <NotFoundPage /> },
    ],
  },
]);

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <GateScreens>
        <RouterProvider router={router} />
      </GateScreens>
    </QueryClientProvider>
  );
}
